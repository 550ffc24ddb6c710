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
        OTPPrompt.check(answer, secret: secret, parameters: parameters, method: .totp, state: state, nowMillis: nowMillis,
                        policy: policy) { step, offset, next in .timeStep(factor: name, step: step, offset: offset, verify: next) }
    }
}
