import TwofoldStore

/// The per-host share of a user's failures (docs/threat_model.md, "A fleet"). The lock stays
/// fleet-wide: `max_failures` consecutive failures, from any hosts, lock the user everywhere, so
/// the fleet never gives more guesses than the policy allows in total. Within that budget one host
/// may cause at most `quota` failures of a user in `lock_seconds` (counted from the audit, since
/// the user's last success): past it, that host's next dialogs for the user are refused before a
/// code is asked (not checked, not counted). So neither one host nor two can lock an account
/// fleet-wide. Checked only when the user has failures in a row, so a normal login pays nothing.
extension Authenticator {
    /// A host's share: under half the budget, so two hosts together stay under it too.
    static func hostFailureQuota(maxFailures: Int) -> Int { max(1, (maxFailures - 1) / 2) }

    func withinHostQuota(_ context: LoginContext, record: UserRecord, policy: Policy) async -> LoginStart {
        let quota = Self.hostFailureQuota(maxFailures: policy.throttlePolicy.maxFailures)
        let now = clock.nowMillis()
        let since = max(record.lastSuccessMillis ?? 0, now - policy.throttlePolicy.lockDurationMillis)
        let counted: Int
        do {
            counted = try await store.audit(AuditQuery(user: context.user, sinceMillis: since, outcome: "failure", host: context.host,
                                                       limit: quota)).count
        } catch {
            logger.error("cannot count the host's failures", metadata: ["user": "\(context.user)", "error": "\(error)"])
            return .unavailable
        }
        guard counted >= quota else { return .askCode(record) }
        await auditBeforeDeadline(context, outcome: "throttled", reason: "host \(context.host) has caused \(counted) failures of this account; its share is \(quota)")
        return .denied(userMessage: "Too many failed attempts for this account from this host. Try again later, or from another host.")
    }
}
