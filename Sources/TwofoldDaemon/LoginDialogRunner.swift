import Logging
import NIOCore
import TwofoldCore
import TwofoldProtocol
import TwofoldQR

/// Runs one login dialog on a connection: checks the peer may ask about the user, then sends the
/// prompts and the verdict the `Authenticator` decides. Every text the user sees is made here.
struct LoginDialogRunner: Sendable {
    let authenticator: Authenticator
    let enrollment: EnrollmentService
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
        case .grace(let notice):
            try await outbound.write(.info(notice))
            try await outbound.write(.verdict(.ignore, reason: "grace period"))
        case .enroll:
            try await enrollAtLogin(context, messages: &messages, outbound: outbound)
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

    /// A required user without an enrollment, under "enroll at login": show the QR code and the
    /// secret, ask for code(s) from the app, activate, show the recovery codes once.
    private func enrollAtLogin(_ context: LoginContext,
                               messages: inout NIOAsyncChannelInboundStream<Message>.AsyncIterator,
                               outbound: NIOAsyncChannelOutboundWriter<Message>) async throws {
        let offer: EnrollmentOffer
        do {
            // Show the same pending secret again if the user scanned it at an earlier attempt.
            offer = try await enrollment.begin(user: context.user, reuse: true)
        } catch {
            logger.error("enroll at login failed", metadata: ["user": "\(context.user)", "error": "\(error)"])
            try await outbound.write(.verdict(.unavailable, reason: "store unavailable"))
            return
        }
        await authenticator.audit(context, outcome: "pending", reason: "enroll at login: secret shown", action: "enroll")
        var text = "Two-factor authentication is required for this account. Scan this QR code with an authenticator app"
        text += " (Google Authenticator, Aegis, FreeOTP, 1Password, ...):\n\n"
        if let qr = try? QRCode.encode(offer.uri) { text += qr.renderUTF8() + "\n" }
        text += "or type this key by hand: \(Base32.grouped(offer.secretBase32))\n"
        text += "(\(offer.algorithm), \(offer.digits) digits, every \(offer.period) seconds)\n\n"
        // The instructions travel inside the prompt, not as INFO: a PAM client may suppress INFO
        // (sudo passes PAM_SILENT; some screen lockers show prompts only), never a prompt.
        var codes: [String] = []
        for index in 0..<offer.codesRequired {
            try await outbound.write(.promptEchoOn(index == 0 ? text + "Code from the app: " : "Next code (after it changes): "))
            guard let reply = try await messages.next() else {
                await authenticator.audit(context, outcome: "abandoned", reason: "enroll at login: connection closed", action: "enroll")
                return
            }
            guard case .answer(let answer) = reply else { throw ProtocolError.unexpectedMessage("expected ANSWER after a prompt") }
            codes.append(answer)
        }
        do {
            let recovery = try await enrollment.verifyAndActivate(user: context.user, codes: codes)
            await authenticator.audit(context, outcome: "success", reason: "enrolled at login", action: "enroll")
            var list = "Two-factor authentication is now on. Save these recovery codes somewhere safe; each works once"
            list += " in place of a code if you lose your phone. They are shown only now:\n\n"
            list += recovery.map { "    " + $0 }.joined(separator: "\n")
            // Part of a prompt, not INFO after the verdict: sshd prints trailing PAM info only for
            // interactive shells, and PAM_SILENT callers drop INFO altogether.
            try await outbound.write(.promptEchoOn(list + "\n\nPress Enter when you have saved them: "))
            guard try await messages.next() != nil else {
                await authenticator.audit(context, outcome: "abandoned", reason: "closed before acknowledging the recovery codes", action: "enroll")
                return
            }
            try await outbound.write(.verdict(.success, reason: "enrolled at login"))
        } catch let failure as ControlFailure {
            await authenticator.audit(context, outcome: "failure", reason: "enroll at login: \(failure.message)", action: "enroll")
            try await outbound.write(.errorMessage("That code does not match. Log in again to retry with the same key."))
            try await outbound.write(.verdict(.failure, reason: "enrollment code did not match"))
        } catch {
            logger.error("enroll at login failed", metadata: ["user": "\(context.user)", "error": "\(error)"])
            try await outbound.write(.verdict(.unavailable, reason: "store unavailable"))
        }
    }

    static let lockedText = "Too many failed verification attempts: this account is locked for now. Try again later, or ask an administrator to unlock it."

    /// Non-empty, no control characters (a PAM item is a C string; the codec already bounds length).
    static func isPlausibleName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
    }
}
