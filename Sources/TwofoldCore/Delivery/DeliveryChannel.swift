/// How a delivered code reaches a user: the two kinds of contact.
public enum DeliveryChannel: String, Codable, Sendable, CaseIterable {
    /// An email address (RFC 5321 mailbox, checked loosely; see `ContactAddress`).
    case email
    /// A phone number in E.164 form (`+` and 8 to 15 digits), for text messages.
    case sms

    /// The factor kind a verified contact of this channel gives its user.
    public var factorKind: FactorKind { self == .email ? .email : .sms }

    /// The channel of a delivered-code factor kind; nil for the others.
    public init?(kind: FactorKind) {
        switch kind {
        case .email: self = .email
        case .sms: self = .sms
        case .totp, .hotp, .recovery, .fido2: return nil
        }
    }

    /// How the user calls it at a prompt and in messages.
    public var noun: String { self == .email ? "email" : "text message" }
}
