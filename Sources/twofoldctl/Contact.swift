import ArgumentParser
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl {
    struct Contact: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "contact",
            abstract: "Add, verify, list or remove the email address and phone number that login codes can be sent to.",
            discussion: """
                A contact is an email address or a phone number (international form: +, the country \
                code and the number) that twofoldd sends one-time codes to. It becomes a factor once \
                confirmed: 'contact add' sends a code to it, 'contact verify' takes that code back. \
                A user has at most one verified contact per channel (email, sms); verifying a new \
                one replaces the old one. Logins use a contact only where the policy allows its kind \
                (email, sms; none allows them by default): see 'twofoldctl policy explain'.

                Adding or removing a contact needs a current code of one of your factors when you \
                have one (root, and an admin acting on another user, are not asked). A user whose \
                only factors are contacts gets that code with 'twofoldctl contact send-code'. Codes \
                are read from the terminal (or standard input), never from the command line.

                Email and text messages are weaker than an app: NIST SP 800-63B does not accept \
                email as an out-of-band authenticator and calls SMS (PSTN) restricted.
                """,
            subcommands: [Add.self, Verify.self, List.self, Remove.self, Import.self, SendCode.self]
        )
    }
}

extension Twofoldctl.Contact {
    /// The prompt for a current code of a user who has a factor.
    static let currentCodePrompt = "Current code (any factor, a recovery code, or one from 'twofoldctl contact send-code'): "

    /// Whether `status` shows a verified contact: a code from 'twofoldctl contact send-code' then
    /// works where a current code is asked.
    static func hasVerifiedContact(_ status: UserStatus) -> Bool {
        !Format.verifiedContacts(status).isEmpty
    }

    /// The prompt for a current code where it would be `plain`: `currentCodePrompt`, which names
    /// 'twofoldctl contact send-code', when `status` shows a verified contact.
    static func currentCodePrompt(_ plain: String, status: UserStatus?) -> String {
        status.map(hasVerifiedContact) == true ? currentCodePrompt : plain
    }

    /// The same, asking the user's status first (only when the prompt is shown). A status the
    /// daemon does not give leaves `plain`: the request that follows says what is wrong. The
    /// session is closed while the person types.
    static func currentCodePrompt(_ plain: String, user: String?, showPrompts: Bool, session: DaemonSession) -> String {
        guard showPrompts else { return plain }
        defer { session.disconnect() }
        guard case .status(let status)? = try? session.send(.status(user: user)) else { return plain }
        return currentCodePrompt(plain, status: status)
    }

    /// `value` as twofoldd stores it, or a usage error that says what is wrong with it.
    static func normalized(_ value: String, channel: DeliveryChannel) throws -> String {
        do {
            return try ContactAddress.normalize(value, channel: channel)
        } catch let invalid as ContactAddress.Invalid {
            let what = channel == .email ? "an email address" : "a phone number"
            throw ValidationError("'\(DisplayText.escaped(value))' is not \(what) twofoldd accepts: \(invalid.description).")
        }
    }

    /// The channel of `--email` or `--phone`: exactly one of them.
    static func channel(email: Bool, phone: Bool) throws -> DeliveryChannel {
        guard email != phone else { throw ValidationError("Give exactly one of --email and --phone.") }
        return email ? .email : .sms
    }

    /// "email a***@example.com", "phone +49 *** *** 12".
    static func describe(_ info: ContactInfo) -> String {
        "\(info.channel == DeliveryChannel.sms.rawValue ? "phone" : "email") \(info.masked)"
    }

    /// How a code goes to the contact: "by email", "by text message".
    static func by(_ info: ContactInfo) -> String {
        "by " + (DeliveryChannel(rawValue: info.channel)?.noun ?? info.channel)
    }

    /// "10 minutes", "1 minute", "90 seconds".
    static func duration(seconds: Int) -> String {
        if seconds >= 60 && seconds % 60 == 0 {
            let minutes = seconds / 60
            return minutes == 1 ? "1 minute" : "\(minutes) minutes"
        }
        return seconds == 1 ? "1 second" : "\(seconds) seconds"
    }

    /// " --user U" when the command named a user, for the next command to type.
    static func userSuffix(_ user: String?) -> String {
        user.map { " --user \(DisplayText.escaped($0))" } ?? ""
    }

    /// What `add` and `send-code` print with --json.
    struct Sent: Encodable {
        var ok = true
        var user: String
        var contact: ContactInfo
        var message: String
        /// The command to run next.
        var next: String?
    }

    /// The user's status, to know whether they have a factor (a current code is asked then).
    static func status(of user: String?, session: DaemonSession) throws(CLIFailure) -> UserStatus {
        let response = try session.send(.status(user: user))
        guard case .status(let status) = response else { throw unexpected(response) }
        return status
    }

    /// The user's contacts, masked.
    static func contacts(of user: String?, session: DaemonSession) throws(CLIFailure) -> [ContactInfo] {
        let response = try session.send(.contactList(user: user, all: false))
        guard case .contacts(let contacts) = response else { throw unexpected(response) }
        return contacts
    }

    /// A current code of the user's factors when they have one and the caller must give it (not
    /// root, not an admin naming another user); nil otherwise. The session is closed while the
    /// person types.
    static func currentCode(_ status: UserStatus, user: String?, showPrompts: Bool, session: DaemonSession) throws(CLIFailure) -> String? {
        guard status.enrollment == "active", !CallerAccount.isRoot, !CallerAccount.isOther(user) else { return nil }
        session.disconnect()
        return try Terminal.readCode(prompt: currentCodePrompt, showPrompt: showPrompts)
    }
}
