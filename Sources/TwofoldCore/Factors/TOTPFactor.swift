import TwofoldCrypto

/// An RFC 6238 authenticator app or token: a code for the time step, within the drift window,
/// each step accepted once per factor.
public struct TOTPFactor: Factor {
    public static let kind = FactorKind.totp
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
        var timeParameters = parameters
        timeParameters.method = .totp
        switch CodeChecker.check(code: answer, secret: secret, parameters: timeParameters, state: state, nowMillis: nowMillis, policy: policy) {
        case .accepted(let step, let offset, let next): return .accepted(.timeStep(factor: name, step: step, offset: offset, verify: next))
        case .replay: return .replay
        case .rejected: return .rejected
        case .malformed: return .malformed
        }
    }
}

/// What the OTP kinds share: the prompt and the form of a code.
enum OTPPrompt {
    static let text = "Verification code: "

    static func claims(_ answer: String, digits: Int) -> Bool {
        guard var bytes = CodeInput.normalize(answer, digits: digits) else { return false }
        Crypto.wipe(&bytes)
        return true
    }
}
