import ArgumentParser
import CTwofoldFido
import TwofoldProtocol

extension Twofoldctl.Key {
    struct Add: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Register the security key plugged into this host.",
            discussion: """
                If you have a factor, a current code of one is asked first (or a recovery code, or \
                a code from 'twofoldctl contact send-code'); root, and an admin adding a key for \
                another user, are not asked. twofoldd then gives a single-use challenge, and \
                twofoldctl asks the key to make a credential for this installation over it: touch \
                the key when it blinks. When the policy requires user verification and the key \
                needs its PIN to give it, the PIN is asked here, without echo (read from standard \
                input when it is not a terminal), and goes only to the key. twofoldd checks what \
                the key made (the installation's rp id, user presence, user verification when \
                required, the model's attestation when the policy lists models) and stores the key.

                The key must be plugged into the host twofoldctl runs on: over SSH, that is the \
                server, not your own computer. A key registered once works on every host of the \
                installation. A key that already holds a credential of one of your keys refuses: \
                one registration per key and user.

                Examples:
                  twofoldctl key add
                  twofoldctl key add --name blue-key
                  twofoldctl key add --name backup --user alice
                """
        )

        @Option(help: ArgumentHelp("The new key's name (default: key, then key-2, ...).", valueName: "name"))
        var name: String?

        @Option(help: ArgumentHelp("Register a key for this user instead of yourself (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            try Twofoldctl.Key.validateName(name)
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            // Before any code is typed: a key that cannot be used here would waste it.
            try Self.checkLibrary()
            let status = try Twofoldctl.Contact.status(of: user, session: session)
            if status.enrollment == "active" && showPrompts && !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                Output.error("Adding a security key for \(who).")
            }
            let code = try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            let response = try session.send(.keyBegin(user: user, name: name, code: code))
            guard case .keyChallenge(let offer) = response else { throw unexpected(response) }
            let challenge = try SecurityKey.challenge(offer)
            // From here the daemon's name of the user (root and admins name others, or no one).
            let owner = offer.userName
            if showPrompts {
                Output.error("Registering security key '\(DisplayText.escaped(offer.name))' for \(DisplayText.escaped(owner)) with \(DisplayText.escaped(offer.rpID))"
                             + (offer.userVerification ? "; the policy requires user verification (the key's PIN, or its fingerprint)." : "."))
            }
            let registration: KeyRegistration
            switch SecurityKey.register(challenge, prompts: SecurityKey.Prompts(showPrompts: showPrompts)) {
            case .success(let made): registration = made
            case .failure(let failure): throw Twofoldctl.Key.failure(failure, who: DisplayText.escaped(owner), timeoutMillis: challenge.timeoutMillis)
            }
            report(try finish(registration, session: session, validMillis: offer.validMillis))
        }

        /// twofoldctl without libfido2 (built or installed) fails here, before a code is asked.
        static func checkLibrary() throws(CLIFailure) {
            if !SecurityKey.built {
                throw Twofoldctl.Key.failure(.init(status: Twofoldctl.Key.code(TF_FIDO_NOT_BUILT), fidoError: 0), who: "", timeoutMillis: 0)
            }
            if let error = Fido2Library.loadError() {
                throw CLIFailure(ExitStatus.failure, "libfido2 could not be loaded (\(error)): install it (Debian: apt install libfido2-1)")
            }
        }

        /// `keyFinish` on the connection that holds the challenge.
        private func finish(_ registration: KeyRegistration, session: DaemonSession, validMillis: Int) throws(CLIFailure) -> KeyInfo {
            let response: ControlResponse
            do throws(CLIFailure) {
                response = try session.sendOnOpenConnection(.keyFinish(registration))
            } catch where error.exitCode == ExitStatus.unreachable {
                throw CLIFailure(error.exitCode, "\(error.message): the key's registration is lost (its challenge was valid for "
                                 + "\(validMillis / 1000) s, on that connection only); run the command again")
            }
            guard case .keys(let keys) = response, let key = keys.first else { throw unexpected(response) }
            return key
        }

        private func report(_ key: KeyInfo) {
            let message = "Added security key '\(key.name)' of \(key.user) (\(Twofoldctl.Key.describe(key))): "
                + "logins may use it where the policy allows 'fido2'."
            if options.json {
                Output.json(Added(user: key.user, key: key, message: message))
            } else {
                Output.line(DisplayText.escaped(message))
            }
        }

        /// What `key add --json` prints.
        struct Added: Encodable {
            var ok = true
            var user: String
            var key: KeyInfo
            var message: String
        }
    }
}
