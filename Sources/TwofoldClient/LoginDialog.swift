import TwofoldProtocol

/// Drives one login dialog the way the PAM module does: `AUTH_START`, then answers each prompt with
/// `answer(promptText, echo)`, collecting `INFO` / `ERROR_MSG` texts, until the `VERDICT`.
public struct LoginDialog {
    public struct Outcome: Sendable, Equatable {
        public var verdict: VerdictCode
        /// The verdict's TEXT (for the log only).
        public var reason: String?
        /// Every message received from the daemon, in order, ending with the `VERDICT`.
        public var transcript: [Message]

        public init(verdict: VerdictCode, reason: String?, transcript: [Message]) {
            self.verdict = verdict
            self.reason = reason
            self.transcript = transcript
        }

        /// The texts of the `INFO` and `ERROR_MSG` messages, in order.
        public var shownTexts: [String] {
            transcript.compactMap {
                switch $0 {
                case .info(let text), .errorMessage(let text): return text
                default: return nil
                }
            }
        }

        /// The texts of the prompts, in order.
        public var prompts: [String] {
            transcript.compactMap {
                switch $0 {
                case .promptEchoOff(let text, _), .promptEchoOn(let text, _): return text
                default: return nil
                }
            }
        }
    }

    /// Runs the dialog on a new connection and closes it. A nil answer closes the connection without
    /// answering (a PAM conversation failure) and throws `ClientError.conversationAborted`; an error
    /// thrown by `answer` also closes the connection and is rethrown. A `PROTOCOL_ERROR` from the
    /// daemon throws `daemonProtocolError`, any message a module does not expect `protocol(.unexpectedMessage)`.
    ///
    /// Like the module, it always sends CAPABILITIES (`start.capabilities`, empty when nil) and
    /// answers text only: a prompt with a PAYLOAD throws `protocol(.undeclaredCapability)`, or
    /// `protocol(.unexpectedMessage)` if `start` declared `binaryPayload`.
    public static func run(socketPath: String, start: AuthStart, timeoutSeconds: Double = 10,
                           answer: (_ prompt: String, _ echo: Bool) throws -> String?) throws -> Outcome {
        let connection = try TwofoldConnection(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
        defer { connection.close() }
        var start = start
        // Like the module: tell the daemon how long this client waits for each of its messages.
        if start.deadlineMillis == nil { start.deadlineMillis = UInt32(min(max(timeoutSeconds, 0), 4_000_000) * 1000) }
        if start.capabilities == nil { start.capabilities = [] }
        let declared = start.capabilities ?? []
        try connection.send(.authStart(start))
        var transcript: [Message] = []
        while true {
            let message = try connection.receive()
            transcript.append(message)
            switch message {
            case .promptEchoOff(let prompt, let payload), .promptEchoOn(let prompt, let payload):
                do {
                    try declared.check(message)
                } catch let error as ProtocolError {
                    throw ClientError.protocol(error)
                }
                guard payload == nil else { throw ClientError.protocol(.unexpectedMessage("a prompt with a PAYLOAD; this client answers text only")) }
                let echo = message.type == .promptEchoOn
                guard let reply = try answer(prompt, echo) else { throw ClientError.conversationAborted }
                try connection.send(.answer(reply))
            case .info, .errorMessage:
                continue
            case .verdict(let code, let reason):
                return Outcome(verdict: code, reason: reason, transcript: transcript)
            case .protocolError(let reason):
                throw ClientError(.daemonProtocolError(reason))
            case .authStart, .answer, .request, .response, .relay:
                throw ClientError.protocol(.unexpectedMessage("\(message.type.name) in a login dialog"))
            }
        }
    }
}
