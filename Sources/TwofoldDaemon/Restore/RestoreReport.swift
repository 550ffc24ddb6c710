import Foundation
import TwofoldProtocol
import TwofoldStore

/// What `twofoldd restore` did (or, in a dry run, would do): the summary it prints, as text or
/// JSON (`--json`). It names users, factors and hosts, never a secret or a code.
public struct RestoreReport: Codable, Sendable, Equatable {
    /// One revocation of the audit exports and what the restore did with it.
    public struct Reapplied: Codable, Sendable, Equatable {
        public var timeMillis: Int64
        public var user: String?
        /// The audit record ("factor: factor 'phone' removed").
        public var record: String
        /// What the restore did: "removed factor 'phone'", "nothing to do: ..." or why it was skipped.
        public var result: String
        /// Whether the restored store changed.
        public var applied: Bool
    }

    /// "the backup FILE" or "the PostgreSQL database".
    public var source: String
    /// Where the restored store now is (a path, or the PostgreSQL URL).
    public var destination: String
    public var dryRun: Bool
    /// When the copy was taken, where from (the manifest; `--taken-at` for a plain copy).
    public var takenMillis: Int64
    public var takenFromHost: String?
    public var takenByVersion: String?
    /// The copy's schema, and whether it was migrated to this twofoldd's.
    public var schema: String?
    public var migrated = false
    /// The old database kept aside (`--replace`).
    public var keptAside: String?
    public var replay = RestoreReplayResult()
    /// The audit exports read and their records.
    public var auditFiles: [String] = []
    public var auditRecords = 0
    /// Codes accepted after the backup that the audit exports name (their factors moved past them).
    public var codeUsesFound = 0
    public var reapplied: [Reapplied] = []
    public var nowMillis: Int64

    public init(source: String, destination: String, dryRun: Bool, takenMillis: Int64, nowMillis: Int64) {
        self.source = source
        self.destination = destination
        self.dryRun = dryRun
        self.takenMillis = takenMillis
        self.nowMillis = nowMillis
    }

    /// The rule every restore states, whatever it found.
    public static let rule = "whatever was revoked after the backup and is not in the audit you gave comes back"

    /// The text summary, ending with the rule and what to do next.
    public var lines: [String] {
        var lines = ["restore of \(source) into \(destination)" + (dryRun ? " (dry run: nothing was written)" : "")]
        lines.append("taken: \(UTCTime.text(takenMillis))" + (takenFromHost.map { " on \($0)" } ?? "")
            + (takenByVersion.map { " by twofoldd \($0)" } ?? "") + (schema.map { "; schema \($0)" + (migrated ? ", migrated" : "") } ?? ""))
        if let keptAside { lines.append("the database it replaces was kept as \(keptAside)") }
        lines.append("users: \(replay.users) (\(replay.usersWithFactors) with app factors); factors: \(replay.factors)")
        lines.append("replay: \(replay.watermarksRaised) TOTP watermarks raised to the current step, "
            + "\(replay.countersAdvanced) HOTP counters moved past the look-ahead window (no code used after the backup works again)"
            + (codeUsesFound > 0 ? "; \(codeUsesFound) codes used after the backup found in the audit, each factor moved past them" : ""))
        lines.append(recoveryLine)
        lines.append("audit: \(auditRecords) records read from \(auditFiles.count) file\(auditFiles.count == 1 ? "" : "s"); "
            + "\(reapplied.filter(\.applied).count) revocations re-applied, \(reapplied.filter { !$0.applied }.count) with nothing to do")
        // The records' texts come from the exports (a user name is whatever a client sent): escaped
        // before they reach root's terminal.
        lines += reapplied.map {
            "  \(UTCTime.text($0.timeMillis)) " + DisplayText.escaped("\($0.user ?? "-"): \($0.record) -> \($0.result)")
        }
        lines.append("Rule: \(Self.rule).")
        return lines + nextSteps
    }

    private var recoveryLine: String {
        if replay.recoverySetsInvalidated > 0 {
            return "recovery codes: \(replay.recoverySetsInvalidated) users' sets invalidated (--rotate-recovery-codes); "
                + "each gets a new set with 'twofoldctl recovery-codes'"
        }
        return "recovery codes: \(replay.recoverySets) users have sets older than the backup; codes used since may work again "
            + "(--rotate-recovery-codes invalidates them)"
    }

    private var nextSteps: [String] {
        var steps = ["", "Next:"]
        if dryRun { steps.append("  - run it again without --dry-run") }
        if auditFiles.isEmpty {
            steps.append("  - give the audit since the backup (--audit FILE: 'twofoldctl audit --json' of another copy, or "
                + "'journalctl -o json -u twofoldd'), or check by hand what was revoked since")
        }
        if replay.recoverySetsInvalidated > 0 { steps.append("  - tell those users to run 'twofoldctl recovery-codes'") }
        steps.append("  - start twofoldd and try a login")
        return steps
    }
}

/// Times in the summary: UTC, to the second.
enum UTCTime {
    static func text(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }
}
