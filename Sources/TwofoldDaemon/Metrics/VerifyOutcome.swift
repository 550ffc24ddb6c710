import TwofoldProtocol

/// How a login dialog ended: the `outcome` label of `twofold_verifies_total`. The verdict, with the
/// failures told apart where the daemon knows more (a replayed code, an answer before a throttle
/// delay ended), and the dialogs that ended without one.
public enum VerifyOutcome: String, CaseIterable, Sendable {
    case success, failure, replay, throttled, locked, ignore, denied, unavailable
    case badRequest = "bad_request"
    /// Ended with PROTOCOL_ERROR.
    case protocolError = "protocol_error"
    /// The client closed the connection before the verdict (at the code prompt, or while enrolling).
    case abandoned

    /// What a verdict says, when nothing finer is known.
    public init(_ verdict: VerdictCode) {
        self = switch verdict {
        case .success: .success
        case .failure: .failure
        case .locked: .locked
        case .ignore: .ignore
        case .unavailable: .unavailable
        case .badRequest: .badRequest
        case .denied: .denied
        }
    }

    /// The outcome of a dialog whose last message is `message`; nil when it does not end one.
    init?(ending message: Message) {
        switch message {
        case .verdict(let code, _): self.init(code)
        case .protocolError: self = .protocolError
        default: return nil
        }
    }
}
