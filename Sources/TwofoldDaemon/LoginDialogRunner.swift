import Logging
import NIOCore
import TwofoldCore
import TwofoldProtocol
import TwofoldQR

/// The texts of a login dialog, and the enroll-at-login dialog, which awaits the store between
/// messages and so runs as a task over `AsyncDialog` (the verify dialog runs on the event loop in
/// `ConnectionHandler`).
struct LoginDialogRunner: Sendable {
    let authenticator: Authenticator
    let enrollment: EnrollmentService
    let delivery: CodeDelivery
    let logger: Logger

    static let codePrompt = "Verification code: "

    /// A required user without an enrollment, under "enroll at login": show the QR code and the
    /// secret, ask for code(s) from the app, activate, show the recovery codes once.
    func enrollAtLogin(_ context: LoginContext, dialog: AsyncDialog) async throws {
        let offer: EnrollmentOffer
        do {
            // Always a new secret: a pending one may have been started by `twofoldctl enroll` in the
            // user's own session, and whoever holds the password must not be shown it here.
            offer = try await enrollment.begin(user: context.user, factor: FactorName.first)
        } catch {
            logger.error("enroll at login failed", metadata: ["user": "\(context.user)", "error": "\(error)"])
            try await dialog.send(.verdict(.unavailable, reason: "store unavailable"))
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
            try await dialog.send(.promptEchoOn(index == 0 ? text + "Code from the app: " : "Next code (after it changes): "))
            guard let reply = try await dialog.receive() else {
                await authenticator.audit(context, outcome: "abandoned", reason: "enroll at login: connection closed", action: "enroll")
                return
            }
            guard case .answer(let answer, _) = reply else { throw ProtocolError.unexpectedMessage("expected ANSWER after a prompt") }
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
            try await dialog.send(.promptEchoOn(list + "\n\nPress Enter when you have saved them: "))
            guard try await dialog.receive() != nil else {
                await authenticator.audit(context, outcome: "abandoned", reason: "closed before acknowledging the recovery codes", action: "enroll")
                return
            }
            try await dialog.send(.verdict(.success, reason: "enrolled at login"))
        } catch let failure as ControlFailure {
            await authenticator.audit(context, outcome: "failure", reason: "enroll at login: \(failure.message)", action: "enroll")
            try await dialog.send(.errorMessage("That code does not match. Log in again to retry with the same key."))
            try await dialog.send(.verdict(.failure, reason: "enrollment code did not match"))
        } catch {
            logger.error("enroll at login failed", metadata: ["user": "\(context.user)", "error": "\(error)"])
            try await dialog.send(.verdict(.unavailable, reason: "store unavailable"))
        }
    }

    static let lockedText = "Too many failed verification attempts: this account is locked for now. Try again later, or ask an administrator to unlock it."

    /// Non-empty, no control characters (a PAM item is a C string; the codec already bounds length).
    static func isPlausibleName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }
    }
}
