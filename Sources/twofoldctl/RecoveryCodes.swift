import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct RecoveryCodes: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "recovery-codes",
            abstract: "Replace your recovery codes with a fresh set (after a current code).",
            discussion: """
                Asks for a current code (from your authenticator app, or, if you have a verified \
                contact, one from 'twofoldctl contact send-code'), then prints a new set of recovery \
                codes once. The old set stops working at once.
                """
        )

        @Option(help: ArgumentHelp("Act on this user instead of yourself (admins only; the code is still the user's).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let prompt = Twofoldctl.Contact.currentCodePrompt("Current code from your authenticator app: ", user: user,
                                                              showPrompts: showPrompts, session: session)
            let code = try Terminal.readCode(prompt: prompt, showPrompt: showPrompts)
            let response = try session.send(.regenerateRecoveryCodes(user: user, code: code))
            guard case .recoveryCodes(let codes) = response else { throw unexpected(response) }
            if options.json {
                Output.json(Codes(recoveryCodes: codes))
            } else {
                Output.line("New recovery codes; the old ones no longer work. Save them now, they are shown only once:")
                Output.line()
                Output.raw(Format.recoveryCodes(codes))
            }
        }

        struct Codes: Encodable {
            var recoveryCodes: [String]
        }
    }
}
