import TwofoldCrypto

/// An RFC 4226 counter token: a code for a counter at or ahead of the stored one (look-ahead
/// window); the counter moves past each accepted code.
public struct HOTPFactor: Factor {
    public static let kind = FactorKind.hotp
    public static let prompt = OTPPrompt.text
    public let name: String
    let secret: SecretBytes
    let parameters: OTPParameters
    let state: VerifyState

    public init(name: String, secret: SecretBytes, parameters: OTPParameters, state: VerifyState) {
        self.name = name
        self.secret = secret
        self.parameters = parameters
        self.state = state
    }

    public func claims(_ answer: String) -> Bool { OTPPrompt.claims(answer, digits: parameters.digits) }

    public func check(_ answer: String, nowMillis: Int64, policy: WindowPolicy) -> FactorVerdict {
        OTPPrompt.check(answer, secret: secret, parameters: parameters, method: .hotp, state: state, nowMillis: nowMillis,
                        policy: policy) { step, offset, next in .counter(factor: name, counter: UInt64(bitPattern: step), offset: offset) }
    }
}
