import TwofoldCore
import TwofoldStore

/// What a login's code prompt offers by delivered codes: the channels the user may ask a code by
/// (allowed for this login, with a verified contact), whether to send one at once (the user has no
/// other factor this login may use), and the code already sent for this host and service.
struct DeliveryOffer: Sendable, Equatable {
    var channels: [DeliveryChannel] = []
    /// Send a code by this channel before the first prompt.
    var sendNow: DeliveryChannel?
    /// The masked destination of the user's login code that is still in force here.
    var inForce: String?

    static let none = DeliveryOffer()

    /// `allowed`: the kinds this login may use (the policy chain's).
    static func plan(_ record: UserRecord, allowed: Set<FactorKind>, host: String, service: String, nowMillis: Int64) -> DeliveryOffer {
        let channels = DeliveryChannel.allCases.filter { allowed.contains($0.factorKind) && record.verifiedContact($0) != nil }
        guard !channels.isEmpty else { return .none }
        var offer = DeliveryOffer(channels: channels)
        if let code = record.deliveredCode, code.purpose == .login, code.expiresMillis > nowMillis, code.host == host,
           code.service == service, channels.contains(code.channel) {
            offer.inForce = ContactAddress.masked(code.destination, channel: code.channel)
        }
        let otherFactor = record.factors.contains { allowed.contains($0.kind) }
        if !otherFactor && offer.inForce == nil { offer.sendNow = channels[0] }
        return offer
    }

    /// The code prompt's text.
    var prompt: String {
        guard !channels.isEmpty else { return LoginDialogRunner.codePrompt }
        let words = channels.map { "\"\($0.rawValue)\"" }.joined(separator: " or ")
        if let inForce { return "Enter the code sent to \(inForce) (or type \(words) for a new one): " }
        return "Verification code (or type \(words) to get one sent): "
    }

    /// The channel an answer asks a code by ("email", "sms"), if it is one offered.
    func channel(asked answer: String) -> DeliveryChannel? {
        let word = answer.trimmingWhitespace().lowercased()
        return channels.first { $0.rawValue == word }
    }
}
