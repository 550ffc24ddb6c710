import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct SendCode: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "send-code",
            abstract: "Send a code to your verified contact, to type where twofoldctl asks for a current code.",
            discussion: """
                For a user with no app's code or recovery code at hand: one whose only factors are \
                contacts, or who lost the app. twofoldctl asks a current code to add or remove a \
                contact (contact add, contact remove), to add a factor (enroll), to remove one \
                (factors remove), for new recovery codes (recovery-codes) and to turn 2FA off \
                (disable). This command has \
                twofoldd send one to your verified email address or phone number (--channel; by \
                default the first that the policy allows for twofoldctl on this host): run the \
                command you need next and type the code when it asks. The code works once, for \
                twofoldctl on this host only, until it expires; a new one replaces it. Sending is \
                limited per user, per contact and per host.
                """
        )

        enum Channel: String, ExpressibleByArgument, CaseIterable {
            case email, sms
            init?(argument: String) {
                switch argument.lowercased() {
                case "email": self = .email
                case "sms", "phone": self = .sms
                default: return nil
                }
            }
        }

        @Option(help: ArgumentHelp("Where to send it: email, or sms for the phone number (default: the first allowed).", valueName: "channel"))
        var channel: Channel?

        @Option(help: ArgumentHelp("Send it to this user's contact instead of yours (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.codeSend(user: user, channel: channel?.rawValue))
            guard case .contactCodeSent(let info) = response else { throw unexpected(response) }
            let valid = info.codeValidSeconds.map { "; it is valid for \(Twofoldctl.Contact.duration(seconds: $0)), once" } ?? ""
            let message = "A code was sent \(Twofoldctl.Contact.by(info)) to \(info.masked)\(valid)."
            let next = "Type it where twofoldctl asks for a current code on this host (contact add|remove, enroll, factors remove, "
                + "recovery-codes, disable)."
            if options.json {
                Output.json(Twofoldctl.Contact.Sent(user: info.user, contact: info, message: message, next: nil))
            } else {
                Output.line(message)
                Output.line(next)
            }
        }
    }
}
