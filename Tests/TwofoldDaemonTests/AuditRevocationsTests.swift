import Foundation
import Testing
@testable import TwofoldDaemon
import TwofoldProtocol
import TwofoldStore

/// The revocations `twofoldd restore` finds in audit exports: each record the daemon writes when
/// it takes something away, in both export forms (twofoldctl audit --json, journalctl -o json).
struct AuditRevocationsTests {
    static func entry(_ time: Int64, _ action: String, _ user: String?, _ reason: String?, outcome: String = "success", host: String? = nil) -> AuditEntry {
        AuditEntry(timeMillis: time, action: action, user: user, service: nil, rhost: nil, tty: nil, peerUID: 0, outcome: outcome, reason: reason, host: host)
    }

    @Test("each revocation the daemon audits is found; those before the backup and failures are not")
    func revocationsAfterTheBackup() {
        let records = [
            Self.entry(50, "revoke", "old", nil),
            Self.entry(100, "revoke", "ann", nil),
            Self.entry(101, "disable", "ben", "2FA turned off by the user"),
            Self.entry(102, "factor", "cat", "factor 'phone' removed"),
            Self.entry(103, "enroll", "dan", "enrollment of factor 'app' active"),
            Self.entry(104, "enroll", "eve", "enrolled at login"),
            Self.entry(105, "recovery", "fay", "new set of 10 recovery codes"),
            Self.entry(106, "contact", "gus", "1 email contact removed (g***@example.org)"),
            Self.entry(107, "contact", "hal", "sms +4********89 verified"),
            Self.entry(108, "key", "ida", "key 'yubi' removed"),
            Self.entry(109, "ssh-key", "jon", "2 SSH keys removed"),
            Self.entry(110, "host", nil, "host 'web1' revoked: 1 certificate(s) no longer accepted", host: "web1"),
            Self.entry(111, "policy", "kim", "override set to required"),
            Self.entry(112, "import", "lou", "factor 'imported' imported from otpauth URI with 0 recovery codes"),
            Self.entry(113, "factor", "cat", "factor 'tablet' removed", outcome: "failure"),
            Self.entry(114, "verify", "cat", "code accepted"),
        ]
        let found = AuditRevocations.find(in: records, after: 100)
        #expect(found.map(\.kind) == [.user, .user, .factor("phone"), .factor("app"), .allFactors, .recoveryCodes,
                                      .contacts(channel: .email, masked: "g***@example.org"), .contactReplaced(channel: .sms, masked: "+4********89"),
                                      .key("yubi"), .sshKey(nil), .host("web1"), .requirement(.required), .factor("imported")])
    }

    @Test("an older daemon's 'enrollment active' is paired with its pending record; unpaired, every factor goes")
    func olderEnrollmentRecords() {
        let replaced = [Self.entry(90, "enroll", "ann", "new secret issued for factor 'app' (replaces it once confirmed)", outcome: "pending"),
                        Self.entry(120, "enroll", "ann", "enrollment active")]
        #expect(AuditRevocations.find(in: replaced, after: 100).map(\.kind) == [.factor("app")])
        let added = [Self.entry(110, "enroll", "ann", "new secret issued for factor 'tablet'", outcome: "pending"),
                     Self.entry(120, "enroll", "ann", "enrollment active")]
        #expect(AuditRevocations.find(in: added, after: 100).isEmpty, "a new factor revokes nothing")
        #expect(AuditRevocations.find(in: [Self.entry(120, "enroll", "ann", "enrollment active")], after: 100).map(\.kind) == [.allFactors])
    }

    @Test("journalctl -o json lines of twofoldd are read as the daemon logs its records; other lines, and records of other units, are skipped")
    func journalLines() throws {
        // The message exactly as Authenticator+Audit logs a record through JournalLogHandler (metadata
        // sorted); an rhost ending in a backslash must not swallow the fields after it.
        let metadata = ["outcome": "success", "peer_uid": "0", "reason": "factor 'it''s \"odd\"' removed", "rhost": "evil\\", "service": "",
                        "user": "cat"]
        func message(_ action: String, _ metadata: [String: String]) -> String {
            action + metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\(JournalLogHandler.quote($0.value))" }.joined()
        }
        func line(_ message: String, _ micros: Int64, unit: String = "twofoldd.service") throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: ["MESSAGE": message, "__REALTIME_TIMESTAMP": String(micros),
                                                                          "SYSLOG_IDENTIFIER": "twofoldd", "_SYSTEMD_UNIT": unit]), as: UTF8.self)
        }
        // A local user's `logger -t twofoldd` line shaped like a record: journald names its real unit.
        let forged = message("policy", ["outcome": "success", "reason": "override set to exempt", "user": "cat"])
        let path = NSTemporaryDirectory() + "journal-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try [try line("store opened path=/var/lib/twofold/twofold.sqlite", 1_000), try line(message("factor", metadata), 200_000_000),
             try line(forged, 300_000_000, unit: "session-4.scope")].joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let entries = try AuditExport.read(path: path)
        #expect(entries.count == 1, "\(entries)")
        #expect(entries.first?.timeMillis == 200_000 && entries.first?.user == "cat" && entries.first?.reason == metadata["reason"])
        #expect(entries.first?.outcome == "success" && entries.first?.rhost == "evil\\", "\(entries)")
        #expect(AuditRevocations.find(in: entries, after: 100).map(\.kind) == [.factor("it''s \"odd\"")])
    }

    @Test("the restore's report escapes what the exports say (a user name is whatever a client sent)")
    func reportEscapesExportText() {
        var report = RestoreReport(source: "b.sqlite", destination: "twofold.sqlite", dryRun: false, takenMillis: 1_000, nowMillis: 2_000)
        report.reapplied = [RestoreReport.Reapplied(timeMillis: 1_500, user: "eve\u{1B}[2J", record: "revoke: \u{1B}]0;owned\u{07}",
                                                    result: "every factor removed", applied: true)]
        let text = report.lines.joined(separator: "\n")
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(text)")
        #expect(text.contains("eve\\x1B[2J"), "\(text)")
    }

    @Test("a file that is no audit export is refused, naming the line")
    func notAnExport() throws {
        let path = NSTemporaryDirectory() + "audit-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "hello\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try AuditExport.read(path: path) }
    }
}
