/// What `twofoldd move-in` did (or, in a dry run, would do): the summary it prints, as text or
/// JSON (`--json`). It names users and policy fields, never a secret.
public struct MoveInReport: Codable, Sendable, Equatable {
    public struct Conflict: Codable, Sendable, Equatable {
        public var user: String
        public var reason: String
    }

    public struct PolicyDifference: Codable, Sendable, Equatable {
        public var field: String
        public var host: String
        public var tier: String
    }

    public var host: String
    public var dryRun: Bool
    /// Users written into the tier as the host had them.
    public var moved: [String] = []
    /// Users already in the tier with the same factors (an earlier move).
    public var alreadyMoved: [String] = []
    /// Of those, replay states and recovery codes the host had used since, brought over.
    public var updated = 0
    /// Users enrolled differently in the tier: not touched.
    public var conflicts: [Conflict] = []
    /// Enrollments waiting for their first code on the host: not moved (their users enroll again).
    public var pendingNotMoved: [String] = []
    /// Recovery-code sets moved with their users, and their unused codes.
    public var recoveryCodeSets = 0
    public var recoveryCodes = 0
    /// Audit records copied into the tier (those of an earlier move are not copied again).
    public var auditRecords = 0
    /// "same", "different", "none on the host" or "unreadable on the host": the host's stored policy
    /// against the tier's. Never merged.
    public var policy = "none on the host"
    public var policyDifferences: [PolicyDifference] = []
    /// Whether the host is in the tier's host registry (`twofoldctl host add`).
    public var hostRegistered = false

    public init(host: String, dryRun: Bool) {
        self.host = host
        self.dryRun = dryRun
    }

    /// The text summary, ending with what to do next on the host.
    public var lines: [String] {
        var lines = ["move-in of host \(host)" + (dryRun ? " (dry run: nothing was written)" : "")]
        lines.append("users: \(moved.count) moved, \(alreadyMoved.count) already moved"
            + (updated > 0 ? " (\(updated) replay states or used recovery codes brought over)" : "") + ", \(conflicts.count) in conflict")
        lines += conflicts.map { "  conflict: \($0.user): \($0.reason) (not touched)" }
        if !pendingNotMoved.isEmpty {
            lines.append("pending enrollments not moved (enroll again in the tier): \(pendingNotMoved.joined(separator: ", "))")
        }
        lines.append("recovery-code sets: \(recoveryCodeSets) (\(recoveryCodes) unused codes, which keep working)")
        lines.append("audit records: \(auditRecords) copied, with host \(host)")
        let hint = policy == "none on the host" ? " (its twofoldd.conf policy keys applied there: compare them with 'twofoldctl policy show')" : ""
        lines.append("policy: \(policy)" + hint + (policyDifferences.isEmpty ? "" : "; not merged, the tier's applies:"))
        lines += policyDifferences.map { "  \($0.field): host \($0.host), tier \($0.tier)" }
        return lines + nextSteps
    }

    /// What to do on the host once its users are in the tier.
    public var nextSteps: [String] {
        var steps = ["", "Next:"]
        if dryRun { steps.append("  - run it again without --dry-run") }
        if !conflicts.isEmpty {
            steps.append("  - settle the conflicts (e.g. 'twofoldctl user revoke USER' in the tier, or re-enroll), then run it again")
        }
        if !hostRegistered {
            steps.append("  - on a server: twofoldctl host add \(host) --certificate FILE (the host's TLS certificate)")
        }
        steps += [
            "  - on \(host): in twofoldd.conf set role = relay, servers, tls_certificate, tls_key and tls_server_ca "
                + "(README, \"A fleet\"), and remove the store keys; restart twofoldd and try a login",
            "  - keep the host's old database and key file as a backup, offline, until logins through the relay work; then remove them",
        ]
        return steps
    }
}
