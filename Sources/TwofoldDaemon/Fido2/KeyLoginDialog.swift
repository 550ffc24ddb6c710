import NIOCore
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

extension LoginDialogRunner {
    static let pinPrompt = "PIN for your security key: "

    /// A login with a FIDO2 key: send a single-use challenge bound to this dialog (user, host,
    /// service: it lives only in this task), let the module ask the key, check the assertion.
    /// When the module finds no usable key, fall back to the user's other factors as the policy
    /// allows here, else end the login (not counted as a failure: nothing was guessed).
    func keyLogin(_ context: LoginContext, record: UserRecord, dialog: AsyncDialog) async throws {
        let settings = authenticator.keySettings()
        let requireUV = authenticator.policy.current.document.fido2UserVerification
        guard let rpID = settings.rpID, let challenge = try? Crypto.randomBytes(32),
              let request = Self.keyRequest(record.keys, rpID: rpID, challenge: challenge, requireUV: requireUV, settings: settings) else {
            try await askCode(context, record: record, dialog: dialog)
            return
        }
        let sent = NIODeadline.now()
        let touch = requireUV ? "Touch your security key and verify yourself on it (PIN or fingerprint)." : "Touch your security key."
        try await dialog.send(.promptEchoOff(touch, payload: request))
        guard let reply = try await dialog.receive() else {
            await authenticator.audit(context, outcome: "abandoned", reason: "connection closed at the key step")
            return
        }
        guard case .answer(_, let payload?) = reply else { throw ProtocolError.unexpectedMessage("expected a key response (PAYLOAD) to the key step") }
        let response: KeyResponse
        do { response = try KeyResponse.decode(payload) } catch { throw ProtocolError.unexpectedMessage("key response: \(error)") }
        // The challenge lives as long as the touch may take, and a little more for the trip.
        let lateBy = NIODeadline.now() - sent - .seconds(Int64(settings.touchTimeoutSeconds) + 5)
        guard response.status == .ok, let fields = response.assertion, lateBy < .zero else {
            let status = response.status == .ok ? .timeout : response.status
            try await keyUnusable(context, record: record, status: status, fidoError: response.fidoError, dialog: dialog)
            return
        }
        let factor = Fido2Factor(keys: record.keys, rpID: rpID, challenge: challenge, requireUserVerification: requireUV)
        let assertion = KeyAssertion(credentialID: fields.credentialID, authenticatorData: fields.authenticatorData, signature: fields.signature)
        let result = await authenticator.run(authenticator.keyStep(assertion, factor: factor, throttle: record.throttle, context: context))
        for message in Self.ending(result).messages { try await dialog.send(message) }
    }

    /// The key request, listing as many of the user's keys as fit in a PAYLOAD (16 at most).
    static func keyRequest(_ keys: [Fido2Credential], rpID: String, challenge: [UInt8], requireUV: Bool,
                           settings: Fido2Configuration) -> [UInt8]? {
        var ids = Array(keys.prefix(KeyRequest.maxCredentials).map(\.id))
        while !ids.isEmpty {
            let request = KeyRequest(requireUserVerification: requireUV, timeoutMillis: UInt32(settings.touchTimeoutSeconds * 1000),
                                     rpID: rpID, challenge: challenge, credentials: ids, pinPrompt: pinPrompt)
            if let encoded = request.encoded() { return encoded }
            ids.removeLast()
        }
        return nil
    }

    /// The module found no key it could use: say so, then the other factors, or the end.
    private func keyUnusable(_ context: LoginContext, record: UserRecord, status: KeyResponse.Status, fidoError: Int32,
                             dialog: AsyncDialog) async throws {
        let reason = "security key: \(status.description)" + (fidoError == 0 ? "" : " (libfido2 error \(fidoError))")
        if status == .noLibrary || status == .notBuilt {
            logger.warning("a module could not use security keys", metadata: ["user": "\(context.user)", "reason": "\(status.description)"])
        }
        try await dialog.send(.errorMessage(Self.keyText(status)))
        guard await hasFallback(record, context) else {
            await authenticator.audit(context, outcome: "failure", reason: reason + "; no other factor allowed here")
            try await dialog.send(.verdict(.failure, reason: "no usable security key"))
            return
        }
        await authenticator.audit(context, outcome: "pending", reason: reason + "; falling back to a code")
        try await askCode(context, record: record, dialog: dialog)
    }

    static func keyText(_ status: KeyResponse.Status) -> String {
        switch status {
        case .noDevice: "No security key is plugged in."
        case .noCredential: "The security key plugged in is not registered for this account."
        case .timeout: "The security key was not touched in time."
        case .pinRequired, .pinInvalid, .pinBlocked, .uvUnsupported: "The security key could not verify you: \(status.description)."
        case .noLibrary, .notBuilt: "Security keys cannot be used on this host (\(status.description))."
        case .ok, .excluded, .error: "The security key did not answer as expected."
        }
    }

    /// Whether the user has a factor other than a key that this login may use.
    private func hasFallback(_ record: UserRecord, _ context: LoginContext) async -> Bool {
        let allowed = authenticator.policy.current.allowedKinds(user: record.factorKinds, service: context.service, host: context.host).kinds
        if record.hasFactor(ofKindIn: allowed.subtracting([.fido2])) { return true }
        guard allowed.contains(.recovery) else { return false }
        return ((try? await authenticator.store.recoveryCodes(user: context.user).count) ?? 0) > 0
    }

    /// The code prompt, as a task: what the on-loop dialog asks, delivered codes included.
    func askCode(_ context: LoginContext, record: UserRecord, dialog: AsyncDialog) async throws {
        let offer = authenticator.deliveryOffer(record, context: context)
        if let channel = offer.sendNow {
            try await deliverAndAsk(context, record: record, channel: channel, offer: offer, dialog: dialog)
            return
        }
        try await dialog.send(.promptEchoOff(offer.prompt))
        guard let reply = try await dialog.receive() else {
            await authenticator.audit(context, outcome: "abandoned", reason: "connection closed at the code prompt")
            return
        }
        guard case .answer(let answer, _) = reply else { throw ProtocolError.unexpectedMessage("expected ANSWER after a prompt") }
        if let channel = offer.channel(asked: answer) {
            try await deliverAndAsk(context, record: record, channel: channel, offer: offer, dialog: dialog)
            return
        }
        let result = await authenticator.check(answer: answer, record: record, context: context)
        for message in Self.ending(result).messages { try await dialog.send(message) }
    }
}
