import TwofoldCrypto

/// What the OTP kinds share: the prompt, the form of a code, and the check.
enum OTPPrompt {
    static let text = "Verification code: "

    /// Checks `answer` with `method`'s rules (CodeChecker, constant time over the window); `use`
    /// makes the state change of an accepted code from its step (or counter), offset and new state.
    static func check(_ answer: String, secret: SecretBytes, parameters: OTPParameters, method: OTPMethod, state: VerifyState,
                      nowMillis: Int64, policy: WindowPolicy, use: (Int64, Int, VerifyState) -> FactorUse) -> FactorVerdict {
        var methodParameters = parameters
        methodParameters.method = method
        switch CodeChecker.check(code: answer, secret: secret, parameters: methodParameters, state: state, nowMillis: nowMillis, policy: policy) {
        case .accepted(let step, let offset, let next): return .accepted(use(step, offset, next))
        case .replay: return .replay
        case .rejected: return .rejected
        case .malformed: return .malformed
        }
    }

    static func claims(_ answer: String, digits: Int) -> Bool {
        guard var bytes = CodeInput.normalize(answer, digits: digits) else { return false }
        Crypto.wipe(&bytes)
        return true
    }
}
