import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Key {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List security keys: yours, a user's, or every user's (admins).",
            discussion: """
                One line per key: the user, the key's name, its algorithm (ES256 or EdDSA), its \
                model (the AAGUID, a UUID; all zeros when the key gave none), its signature counter \
                as last seen, when it was added and last used. With --json, an array of key \
                documents (times in milliseconds since the epoch, and the first 8 bytes of the \
                credential id in hex, which the audit log shows too). Nothing listed is secret.
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
            let response = try session.send(.keyList(user: user, all: all))
            guard case .keys(let keys) = response else { throw unexpected(response) }
            if options.json {
                Output.json(keys)
                return
            }
            guard !keys.isEmpty else {
                Output.line(all ? "No security keys." : "No security keys for \(DisplayText.escaped(user ?? CallerAccount.name ?? "your account")).")
                return
            }
            Output.raw(Format.table(
                header: ["USER", "NAME", "ALGORITHM", "AAGUID", "COUNTER", "ADDED", "LAST USED"],
                rows: keys.map { key in
                    [
                        key.user,
                        key.name,
                        key.algorithm,
                        key.aaguid,
                        String(key.signCount),
                        Format.time(millis: key.addedMillis),
                        key.lastUsedMillis.map { Format.time(millis: $0) } ?? "never",
                    ]
                }
            ))
        }
    }
}
