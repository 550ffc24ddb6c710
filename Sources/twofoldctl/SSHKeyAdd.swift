import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.SSHKey {
    struct Add: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an SSH public key (a .pub file) for sshd to accept.",
            discussion: """
                FILE is the public half of a key (a .pub file as ssh-keygen writes it, or - for \
                standard input): make one on the computer you connect from, with your security key \
                plugged in, such as ssh-keygen -t ed25519-sk -O verify-required, and copy the .pub \
                file here. Only public keys are taken: a private key is refused unread.

                twofoldctl checks the key first; if you have a factor, a current code of one is \
                asked (or a recovery code, or a code from 'twofoldctl contact send-code'); root, \
                and an admin adding a key for another user, are not asked. twofoldd checks the key \
                against the policy (sk- keys only, unless it allows any type) and stores it: sshd \
                accepts it on every host that asks 'twofoldctl authorized-keys', at the next \
                connection.

                Examples:
                  twofoldctl ssh-key add ~/id_ed25519_sk.pub
                  twofoldctl ssh-key add laptop.pub --name laptop
                  twofoldctl ssh-key add bob.pub --user bob
                """
        )

        @Argument(help: ArgumentHelp("The public key file (.pub), or - for standard input.", valueName: "file"), completion: .file())
        var file: String

        @Option(help: ArgumentHelp("The key's name (default: from its type, such as sk-ed25519).", valueName: "name"))
        var name: String?

        @Option(help: ArgumentHelp("Register a key for this user instead of yourself (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            try Twofoldctl.SSHKey.validateName(name)
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            // Before any code is typed: a key that cannot be used would waste it.
            let (line, key) = try Twofoldctl.SSHKey.publicKeyLine(file: file)
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            let status = try Twofoldctl.Contact.status(of: user, session: session)
            let asked = status.enrollment == "active" && !CallerAccount.isRoot && !CallerAccount.isOther(user)
            // The code is read from standard input too, which the key used up.
            if asked && file == "-" {
                throw CLIFailure(ExitStatus.usage, "a current code is asked on standard input: give the key as a file, not -")
            }
            if asked && showPrompts {
                Output.error("Adding SSH key \(key.type) \(key.fingerprint) for \(who)."
                             + (key.isSecurityKey ? "" : " It is not a hardware (sk-) key: twofoldd takes it only if the policy allows any type."))
            }
            let code = try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            let response = try session.send(.sshKeyAdd(user: user, name: name, line: line, code: code))
            guard case .sshKeys(let keys) = response, let added = keys.first else { throw unexpected(response) }
            let message = "Added SSH key '\(added.name)' of \(added.user) (\(Twofoldctl.SSHKey.describe(added))): "
                + "sshd accepts it on the hosts that ask 'twofoldctl authorized-keys'."
            if options.json {
                Output.json(Added(user: added.user, key: added, message: message))
            } else {
                Output.line(DisplayText.escaped(message))
            }
        }

        /// What `ssh-key add --json` prints.
        struct Added: Encodable {
            var ok = true
            var user: String
            var key: SSHKeyInfo
            var message: String
        }
    }
}
