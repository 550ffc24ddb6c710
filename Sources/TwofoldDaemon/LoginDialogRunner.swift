import Logging
import NIOCore
import TwofoldProtocol

/// Runs one login dialog on a connection: checks the peer may ask about the user, then sends the
/// prompts and the verdict the `Authenticator` decides. Every text the user sees is made here.
struct LoginDialogRunner: Sendable {
    let authenticator: Authenticator
    let logger: Logger

    static let codePrompt = "Verification code: "

    func run(start: AuthStart, peer: PeerCredentials,
             messages: inout NIOAsyncChannelInboundStream<Message>.AsyncIterator,
             outbound: NIOAsyncChannelOutboundWriter<Message>) async throws {
        let context = LoginContext(user: start.user, service: start.service, rhost: start.rhost, tty: start.tty, peer: peer)
        guard Self.isPlausibleName(start.user), Self.isPlausibleName(start.service) else {
            logger.warning("bad login request", metadata: ["peer": "\(peer)"])
            try await outbound.write(.verdict(.badRequest, reason: "user and service must be non-empty names without control characters"))
            return
        }
        // sshd, login, su and sudo run PAM as root; a screen locker runs as the user itself.
        if !peer.isRoot && Accounts.uid(of: start.user) != peer.uid {
            await authenticator.audit(context, outcome: "denied", reason: "peer uid \(peer.uid) may not ask about this user")
            logger.warning("login dialog refused: peer is neither root nor the user", metadata: ["peer": "\(peer)", "user": "\(start.user)"])
            try await outbound.write(.verdict(.denied, reason: "peer not allowed"))
            return
        }

        switch await authenticator.begin(context) {
        case .ignore:
            try await outbound.write(.verdict(.ignore, reason: "not enrolled"))
        case .denied(let text):
            if let text { try await outbound.write(.errorMessage(text)) }
            try await outbound.write(.verdict(.denied, reason: "required but not enrolled"))
        case .locked:
            try await outbound.write(.errorMessage(Self.lockedText))
            try await outbound.write(.verdict(.locked, reason: "locked"))
        case .unavailable:
            try await outbound.write(.verdict(.unavailable, reason: "store unavailable"))
        case .askCode(let record):
            try await outbound.write(.promptEchoOff(Self.codePrompt))
            guard let reply = try await messages.next() else {
                await authenticator.audit(context, outcome: "abandoned", reason: "connection closed at the code prompt")
                return
            }
            guard case .answer(let answer) = reply else {
                throw ProtocolError.unexpectedMessage("expected ANSWER after a prompt")
            }
            switch await authenticator.check(answer: answer, record: record, context: context) {
            case .success(let info):
                if let info { try await outbound.write(.info(info)) }
                try await outbound.write(.verdict(.success, reason: nil))
            case .failure:
                try await outbound.write(.verdict(.failure, reason: "wrong code"))
            case .locked:
                try await outbound.write(.errorMessage(Self.lockedText))
                try await outbound.write(.verdict(.locked, reason: "locked"))
            case .unavailable:
                try await outbound.write(.verdict(.unavailable, reason: "store unavailable"))
            }
        }
    }

    static let lockedText = "Too many failed verification attempts: this account is locked for now. Try again later, or ask an administrator to unlock it."

    /// Non-empty, no control characters (a PAM item is a C string; the codec already bounds length).
    static func isPlausibleName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
    }
}
