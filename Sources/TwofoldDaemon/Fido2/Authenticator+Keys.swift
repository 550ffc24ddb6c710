import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// Logins with a FIDO2 key: whether one can take the key step, and checking its assertion with
/// the same throttle, commit and audit as a code.
extension Authenticator {
    /// Why this login cannot take the key step (nil: it can): the client cannot talk to keys, or
    /// the installation has no relying-party id.
    func keysUnusable(_ context: LoginContext) -> String? {
        if !context.capabilities.canUseKeys { return "this program's login cannot talk to security keys" }
        if keySettings().rpID == nil { return "security keys are not set up on the server (fido2_rp_id)" }
        return nil
    }

    /// A user whose only factors here are keys (and maybe recovery codes), at a login that cannot
    /// take the key step: the code prompt if recovery codes are left (the login read does not
    /// count them), else a denial that says why, counted as nothing.
    func onlyKeys(_ context: LoginContext, why: String, record: UserRecord, recoveryAllowed: Bool) -> LoginStep<LoginStart> {
        let deny = audited(context, outcome: "denied", reason: "only a security key may be used, and \(why)",
                           then: LoginStart.denied(userMessage: "This login needs your security key, which cannot be used here (\(why)). Log in at the console, or ask your administrator."))
        guard recoveryAllowed else { return deny }
        return .async {
            let left = (try? await self.store.recoveryCodes(user: context.user).count) ?? 0
            return left > 0 ? .askCode(record) : await self.run(deny, recordsBy: context.recordsBy)
        }
    }

    /// Whether this login starts with the key step: the user has keys, the policy allows them here,
    /// and the client and the server can use them.
    func startsWithKey(_ record: UserRecord, context: LoginContext) -> Bool {
        guard !record.keys.isEmpty, keysUnusable(context) == nil else { return false }
        return policy.current.allowedKinds(user: record.factorKinds, service: context.service, host: context.host).kinds.contains(.fido2)
    }

    /// Checks a key's assertion for the login's challenge: the throttle delay first (as for a
    /// code), then the checks of `Fido2Factor`, then the commit that moves the key's counter.
    func keyStep(_ assertion: KeyAssertion, factor: Fido2Factor, throttle: ThrottleState, context: LoginContext) -> LoginStep<LoginResult> {
        let policy = self.policy.current
        return afterThrottleDelay(throttle, context: context, policy: policy) {
            self.evaluateKey(factor.check(assertion), context: context, policy: policy)
        }
    }

    private func evaluateKey(_ check: KeyVerdict, context: LoginContext, policy: Policy) -> LoginStep<LoginResult> {
        let now = clock.nowMillis()
        switch check {
        case .accepted(let use):
            if context.clientGone {
                // Nobody hears the verdict: the counter still moves (the assertion cannot be replayed).
                return .commit([.consume(user: context.user, use: use),
                                auditMutation(context, outcome: "abandoned", reason: "right key, but the client gave up before the verdict", at: now)]) { results in
                    .done(results == nil ? .unavailable : .failure)
                }
            }
            let accept = StoreMutation.accept(user: context.user, use: use, atMillis: now, policy: policy.throttlePolicy)
            return .commit([accept, .auditAttempt(attemptRecord(context, reason: Self.describe(use), at: now))]) { results in
                self.keyResult(results, context: context, use: use, policy: policy)
            }
        case .clonedKey(let name, let stored, let presented):
            logger.warning("security key counter did not advance: a cloned key?", metadata: [
                "user": "\(context.user)", "key": "\(name)", "stored": "\(stored)", "presented": "\(presented)",
            ])
            return failStep(context, reason: "cloned security key '\(name)'? counter \(presented) after \(stored); refused", policy: policy)
        case .unknownCredential:
            return failStep(context, reason: "security key: unknown credential", policy: policy)
        case .malformed(let why):
            return failStep(context, reason: "security key: malformed answer (\(why))", policy: policy)
        case .badSignature:
            return failStep(context, reason: "security key: signature does not verify", policy: policy)
        case .wrongRelyingParty:
            return failStep(context, reason: "security key: made for another relying party", policy: policy)
        case .noUserPresence:
            return failStep(context, reason: "security key: not touched (no user presence)", policy: policy)
        case .noUserVerification:
            return failStep(context, reason: "security key: user not verified, and the policy requires it", policy: policy)
        }
    }

    /// What an accepting commit means: a conflict is a counter another login moved first (a
    /// clone used at the same time, or the same assertion twice), refused and counted.
    private func keyResult(_ results: [MutationResult]?, context: LoginContext, use: FactorUse, policy: Policy) -> LoginStep<LoginResult> {
        switch results?.first {
        case .appliedFailure?, .conflict?:
            logger.warning("security key counter moved meanwhile: a cloned key?", metadata: ["user": "\(context.user)", "key": "\(use.factorName)"])
            return failStep(context, reason: "security key '\(use.factorName)': counter already used (a cloned key?); refused", policy: policy,
                            audit: true, replay: true)
        default:
            return attemptResult(results, context: context, policy: policy, success: .success(info: nil))
        }
    }
}
