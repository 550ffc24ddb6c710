import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct Verify: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Confirm a new contact with the code sent to it.",
            discussion: """
                Reads the code that 'twofoldctl contact add' had sent from the terminal (without \
                echo), or one line of standard input when it is not a terminal; never from the \
                command line. The code confirms the contact that waits for it (the last one added); \
                from then on it is a factor, and it replaces your verified contact of the same \
                channel. A wrong code counts as a failed login (throttled, and the account locks \
                after too many); an expired one is refused: add the contact again for a new code.
                """
        )

        @Option(help: ArgumentHelp("Verify a contact of this user instead of yours (admins only; the code is the one sent to the contact).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            // Ask the contacts first: no code is typed when nothing waits for one.
            let waiting = try Twofoldctl.Contact.contacts(of: user, session: session).filter { !$0.verified }
            guard let pending = waiting.max(by: { $0.addedMillis < $1.addedMillis }) else {
                throw CLIFailure(ExitStatus.failure, "no contact of \(who) is waiting for its code; add one with: twofoldctl contact add",
                                 daemonCode: .notFound)
            }
            session.disconnect()
            let code = try Terminal.readCode(prompt: "Code sent to \(pending.masked): ", showPrompt: showPrompts)
            let response = try session.send(.contactVerify(user: user, code: code))
            guard case .ok = response else { throw unexpected(response) }
            let message = "Verified the \(Twofoldctl.Contact.describe(pending)) of \(who): logins may use a code sent to it "
                + "where the policy allows '\(pending.channel)'."
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(message)
            }
        }
    }
}
