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
        var counterParameters = parameters
        counterParameters.method = .hotp
        switch CodeChecker.check(code: answer, secret: secret, parameters: counterParameters, state: state, nowMillis: nowMillis, policy: policy) {
        case .accepted(let counter, let offset, _): return .accepted(.counter(factor: name, counter: UInt64(bitPattern: counter), offset: offset))
        case .replay: return .replay
        case .rejected: return .rejected
        case .malformed: return .malformed
        }
    }
}
