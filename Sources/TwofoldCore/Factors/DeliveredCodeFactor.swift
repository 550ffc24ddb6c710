import TwofoldCrypto

/// A login code sent by email or text message: one per user at a time, single use, valid until it
/// expires and only on the host and service it was requested for.
public struct DeliveredCodeFactor: Factor {
    public static let kind = FactorKind.email   // per record: see `kind`
    public static let prompt = OTPPrompt.text
    public var name: String { record.channel.rawValue }
    public var kind: FactorKind { record.channel.factorKind }
    let record: DeliveredCodeRecord
    let pepper: SecretBytes
    let host: String
    let service: String

    /// `host` and `service`: the login's, which must be the ones the code was sent for.
    public init(record: DeliveredCodeRecord, pepper: SecretBytes, host: String, service: String) {
        self.record = record
        self.pepper = pepper
        self.host = host
        self.service = service
    }

    public func claims(_ answer: String) -> Bool { DeliveredCode.canonical(answer, digits: record.digits) != nil }

    /// The hash is always computed and compared, so the time does not tell an expired or
    /// misplaced code from a wrong one.
    public func check(_ answer: String, nowMillis: Int64, policy: WindowPolicy) -> FactorVerdict {
        guard claims(answer) else { return .malformed }
        let matches = DeliveredCode.matches(answer, record, pepper: pepper)
        let inForce = record.purpose == .login && nowMillis < record.expiresMillis && record.host == host && record.service == service
        return matches && inForce ? .accepted(.deliveredCode(channel: record.channel, id: record.id)) : .rejected
    }
}
