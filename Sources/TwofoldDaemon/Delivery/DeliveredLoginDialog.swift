import TwofoldCore
import TwofoldProtocol
import TwofoldStore

extension LoginDialogRunner {
    /// A login that sends a code (the user's only method here, or asked for at the prompt): send
    /// it, say where it went (masked), ask for it, and check the answer like any code — against
    /// the user's other factors too, so an app code still works at this prompt.
    func deliverAndAsk(_ context: LoginContext, record: UserRecord, channel: DeliveryChannel, offer: DeliveryOffer,
                       dialog: AsyncDialog) async throws {
        guard let contact = record.verifiedContact(channel) else {
            try await dialog.send(.verdict(.failure, reason: "no verified contact"))
            return
        }
        var record = record
        var prompt = LoginDialogRunner.codePrompt
        let request = CodeDelivery.Request(user: context.user, channel: channel, destination: contact.value, purpose: .login,
                                           host: context.host, service: context.service,
                                           audit: authenticator.auditRecord(context, outcome: "", reason: nil, action: "send"),
                                           waitMillis: max(context.holdBudgetMillis, 500))
        switch await delivery.send(request) {
        case .sent(let code, let masked):
            record.deliveredCode = code
            prompt = "A code was sent by \(channel.noun) to \(masked).\nCode: "
        case .limited(let text), .failed(let text):
            // Whatever else the user has still works at this prompt (a code sent earlier, an app, a
            // recovery code); with nothing else the login ends here, not counted as a failure.
            try await dialog.send(.errorMessage(text))
            guard await hasOtherFactor(record, context, offer: offer) else {
                try await dialog.send(.verdict(.failure, reason: "code not sent"))
                return
            }
        }
        try await dialog.send(.promptEchoOff(prompt))
        guard let reply = try await dialog.receive() else {
            await authenticator.audit(context, outcome: "abandoned", reason: "connection closed at the code prompt")
            return
        }
        guard case .answer(let answer, _) = reply else { throw ProtocolError.unexpectedMessage("expected ANSWER after a prompt") }
        let result = await authenticator.check(answer: answer, record: record, context: context)
        for message in Self.ending(result).messages { try await dialog.send(message) }
    }

    /// Whether the user can still answer this login without a new code: a code sent earlier, a
    /// factor of an allowed kind, or recovery codes (the login reader does not count them).
    private func hasOtherFactor(_ record: UserRecord, _ context: LoginContext, offer: DeliveryOffer) async -> Bool {
        let allowed = authenticator.policy.current.allowedKinds(user: record.factorKinds, service: context.service, host: context.host).kinds
        if offer.inForce != nil || record.factors.contains(where: { allowed.contains($0.kind) }) { return true }
        guard allowed.contains(.recovery) else { return false }
        return ((try? await authenticator.store.recoveryCodes(user: context.user).count) ?? 0) > 0
    }

    /// The last messages of a login dialog for a checked answer, and how it counts when the verdict
    /// alone does not say.
    static func ending(_ result: LoginResult) -> (messages: [Message], outcome: VerifyOutcome?) {
        switch result {
        case .success(let info):
            return ((info.map { [Message.info($0)] } ?? []) + [.verdict(.success, reason: nil)], nil)
        case .failure:
            return ([.verdict(.failure, reason: "wrong code")], nil)
        case .replay:
            return ([.verdict(.failure, reason: "replayed code")], .replay)
        case .locked:
            return ([.errorMessage(lockedText), .verdict(.locked, reason: "locked")], nil)
        case .tooSoon(let wait):
            let seconds = (wait + 999) / 1000
            return ([.errorMessage("Too many failed attempts: wait \(seconds) second\(seconds == 1 ? "" : "s") before trying again."),
                     .verdict(.failure, reason: "throttle delay in force")], .throttled)
        case .unavailable:
            return ([.verdict(.unavailable, reason: "store unavailable")], nil)
        }
    }
}
