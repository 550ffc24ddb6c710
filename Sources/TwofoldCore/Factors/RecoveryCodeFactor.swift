import TwofoldCrypto

/// A user's one set of recovery codes (and imported google-authenticator scratch codes): each
/// works once. Matched against every unused code in constant time.
public struct RecoveryCodeFactor: Factor {
    public static let kind = FactorKind.recovery
    public static let prompt = OTPPrompt.text
    /// The set's name in listings and audit records; no OTP factor may take it.
    public static let setName = "recovery"
    public var name: String { Self.setName }
    let candidates: [(index: Int, hash: RecoveryCodeHash)]
    let pepper: SecretBytes

    public init(unused candidates: [(index: Int, hash: RecoveryCodeHash)], pepper: SecretBytes) {
        self.candidates = candidates
        self.pepper = pepper
    }

    /// The form of a recovery or scratch code, whatever the set holds.
    public static func claims(_ answer: String) -> Bool {
        RecoveryCodes.canonical(answer) != nil || RecoveryCodes.scratchCanonical(answer) != nil
    }

    public func claims(_ answer: String) -> Bool { Self.claims(answer) }

    public func check(_ answer: String, nowMillis: Int64, policy: WindowPolicy) -> FactorVerdict {
        guard claims(answer) else { return .malformed }
        guard let index = RecoveryCodes.match(answer, against: candidates, pepper: pepper) else { return .rejected }
        return .accepted(.recoveryCode(index: index))
    }
}
