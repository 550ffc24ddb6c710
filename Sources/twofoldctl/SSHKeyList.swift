import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.SSHKey {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "List SSH keys: yours, a user's, or every user's (admins).",
            discussion: """
                One line per key: the user, the key's name, its type (sk-ssh-ed25519@openssh.com, \
                ...), its fingerprint as ssh-keygen -l prints it (SHA256:...; sshd logs the same), \
                its comment and when it was added. With --json, an array of key documents (times \
                in milliseconds since the epoch). Nothing listed is secret.
                """
        )

        @Option(help: ArgumentHelp("List this user's keys instead of yours (admins only).", valueName: "user"))
        var user: String?

        @Flag(help: "List every user's keys (admins only).")
        var all = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if all && user != nil { throw ValidationError("--all and --user do not go together.") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.sshKeyList(user: user, all: all))
            guard case .sshKeys(let keys) = response else { throw unexpected(response) }
            if options.json {
                Output.json(keys)
                return
            }
            guard !keys.isEmpty else {
                Output.line(all ? "No SSH keys." : "No SSH keys for \(DisplayText.escaped(user ?? CallerAccount.name ?? "your account")).")
                return
            }
            Output.raw(Format.table(
                header: ["USER", "NAME", "TYPE", "FINGERPRINT", "COMMENT", "ADDED"],
                rows: keys.map { key in
                    [key.user, key.name, key.type, key.fingerprint, key.comment.isEmpty ? "-" : key.comment, Format.time(millis: key.addedMillis)]
                }
            ))
        }
    }
}
