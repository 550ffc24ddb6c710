import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Disable: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "disable",
            abstract: "Turn 2FA off for your account (after a current code), where the policy allows it.",
            discussion: """
                Asks for a current code: from your authenticator app, or, if you have a verified \
                contact, one from 'twofoldctl contact send-code'. The policy may refuse (allow-disable \
                false, or 2FA is required for you); then ask an administrator.
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
            let response = try session.send(.disable(user: user, code: code))
            switch response {
            case .ok, .status: break
            default: throw unexpected(response)
            }
            let who = user ?? CallerAccount.name ?? "your account"
            let message = "2FA is now off for \(who)."
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(message)
            }
        }
    }
}
