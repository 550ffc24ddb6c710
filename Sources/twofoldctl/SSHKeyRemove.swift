import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.SSHKey {
    struct Remove: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove an SSH key (after a current code), or all of a user's keys (admins).",
            discussion: """
                NAME is the key's name as 'twofoldctl ssh-key list' shows it, or its fingerprint \
                (SHA256:..., as 'ssh-keygen -l -f KEY.pub' and the audit print it). If you have a factor, \
                a current code of one is asked as for 'ssh-key add'; root, and an admin removing \
                another user's key, are not asked. sshd refuses the key at the next connection on \
                every host that asks 'twofoldctl authorized-keys'; a relay that cannot reach the \
                servers serves the keys it cached until its cache expires (ssh_key_cache_seconds, \
                one hour by default). Sessions already open stay open.

                --all --user USER revokes every SSH key of USER (admins only), e.g. for a lost key.
                SSH keys are not login factors: removing them never turns 2FA off.

                Examples:
                  twofoldctl ssh-key remove laptop
                  twofoldctl ssh-key remove sk-ed25519 --user alice
                  twofoldctl ssh-key remove SHA256:2bXWqRpSTz4N3k7hJ0GQjIY5vC8oR1mFhZs6tWb9yLc --user alice
                  twofoldctl ssh-key remove --all --user alice
                """
        )

        @Argument(help: ArgumentHelp("The key to remove: its name, or its SHA256: fingerprint.", valueName: "name"))
        var name: String?

        @Flag(help: "Remove every SSH key of the user given with --user (admins only).")
        var all = false

        @Option(help: ArgumentHelp("Remove a key of this user instead of yours (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard (name == nil) == all else { throw ValidationError("Give the name of an SSH key, or --all with --user.") }
            if all && user == nil { throw ValidationError("--all needs --user: it revokes every SSH key of one user (admins only).") }
            if let name, name.hasPrefix("SHA256:") {
                let digest = name.dropFirst("SHA256:".count)
                guard digest.count == 43, digest.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else {
                    throw ValidationError("'\(name)' is not a SHA256 fingerprint as ssh-keygen -l prints it.")
                }
            } else {
                try Twofoldctl.SSHKey.validateName(name)
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            // Ask the keys first: no code is typed for a key that is not there.
            let keys = try Twofoldctl.SSHKey.keys(of: user, session: session)
            let removed = keys.filter { all || $0.name == name || $0.fingerprint == name }
            guard !removed.isEmpty else {
                let what = name.map { "no SSH key '\(DisplayText.escaped($0))'" } ?? "no SSH keys"
                throw CLIFailure(ExitStatus.failure, "\(DisplayText.escaped(who)) has \(what)", daemonCode: .notFound)
            }
            let what = all ? "all \(removed.count) SSH key\(removed.count == 1 ? "" : "s")" : "SSH key '\(removed[0].name)'"
            // --all is an admin's revocation: twofoldd asks no code of an admin.
            var code: String?
            if !all {
                let status = try Twofoldctl.Contact.status(of: user, session: session)
                if status.enrollment == "active" && showPrompts && !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                    Output.error("Removing \(what) of \(who) (\(removed[0].fingerprint)).")
                }
                code = try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            }
            let response = try session.send(.sshKeyRemove(user: user, name: all ? nil : removed[0].name, code: code))
            switch response {
            case .ok, .sshKeys: break
            default: throw unexpected(response)
            }
            let message = "Removed \(what) of \(who): sshd refuses \(removed.count == 1 ? "it" : "them") at the next connection."
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(DisplayText.escaped(message))
            }
        }
    }
}
