import ArgumentParser
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct Add: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add an email address or a phone number; a code is sent to it to confirm it.",
            discussion: """
                twofoldctl checks the address first (an email address with one '@' and a domain; a \
                phone number as +, the country code and the number, such as +4915112345678: spaces, \
                dashes, dots and brackets between the digits are dropped). If you have a factor, \
                it asks a current code of one (or a recovery code, or a code from 'twofoldctl \
                contact send-code'); root, and an admin adding a contact for another user, are not \
                asked. twofoldd then sends a code to the new contact and twofoldctl says where it \
                went (masked) and how long it is valid: type it with 'twofoldctl contact verify'. \
                Until then the contact is not used. A new contact replaces one of its channel that \
                still waits for its code; the verified one stays until the new one is verified.

                Examples:
                  twofoldctl contact add --email alice@example.com
                  twofoldctl contact add --phone '+49 151 1234 5678'
                  twofoldctl contact add --email bob@example.com --user bob
                """
        )

        @Option(help: ArgumentHelp("The email address to add.", valueName: "address"))
        var email: String?

        @Option(help: ArgumentHelp("The phone number to add, in international form (+ and the country code).", valueName: "number"))
        var phone: String?

        @Option(help: ArgumentHelp("Add a contact for this user instead of yourself (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            _ = try address()
        }

        /// The channel and the address as twofoldd stores it.
        func address() throws -> (DeliveryChannel, String) {
            let channel = try Twofoldctl.Contact.channel(email: email != nil, phone: phone != nil)
            return (channel, try Twofoldctl.Contact.normalized(email ?? phone ?? "", channel: channel))
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let channel: DeliveryChannel, value: String
            do { (channel, value) = try address() } catch { throw CLIFailure(ExitStatus.usage, "\(error)") }
            let who = user ?? CallerAccount.name ?? "your account"
            // Whether the user has a factor: a current code is asked then (a contact must not be
            // added by whoever sits at the user's session).
            let status = try Twofoldctl.Contact.status(of: user, session: session)
            if status.enrollment == "active" && showPrompts && !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                Output.error("Adding \(channel == .email ? "email address" : "phone number") \(ContactAddress.masked(value, channel: channel)) "
                             + "for \(who): a code goes to it to confirm it.")
            }
            let code = try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            let response = try session.send(.contactAdd(user: user, channel: channel.rawValue, value: value, code: code))
            guard case .contactCodeSent(let info) = response else { throw unexpected(response) }
            let valid = info.codeValidSeconds.map { "; it is valid for \(Twofoldctl.Contact.duration(seconds: $0))" } ?? ""
            let message = "A code was sent \(Twofoldctl.Contact.by(info)) to \(info.masked)\(valid)."
            let next = "twofoldctl contact verify" + Twofoldctl.Contact.userSuffix(user)
            if options.json {
                Output.json(Twofoldctl.Contact.Sent(user: info.user, contact: info, message: message, next: next))
            } else {
                Output.line(message)
                Output.line("Confirm the contact with '\(next)' and that code; until then it is not used.")
            }
        }
    }
}
