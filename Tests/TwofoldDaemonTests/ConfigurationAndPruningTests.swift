import Foundation
import Logging
import Testing
import TwofoldTestSupport
@testable import TwofoldDaemon
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// The config file parser, and audit retention.
@Suite("configuration file")
struct ConfigurationTests {
    @Test("the shipped twofoldd.conf parses, and uncommented it gives exactly the defaults")
    func shippedFileIsTheDefaults() throws {
        let text = try String(contentsOfFile: TestPaths.root + "/systemd/twofoldd.conf", encoding: .utf8)
        #expect(try DaemonConfiguration.parse(text) == DaemonConfiguration())
        // Every documented key, uncommented, with its documented value (the empty ones are left out).
        let uncommented = text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("#"), let eq = line.firstIndex(of: "="), !line.hasPrefix("# ") else { return nil }
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            return value.isEmpty ? nil : String(line.dropFirst())
        }
        #expect(uncommented.contains { $0.hasPrefix("audit_retention_days") })
        // database and key_file default to paths derived from state_directory.
        let derived: [String: String] = ["database": DaemonConfiguration().resolvedDatabasePath, "key_file": DaemonConfiguration().resolvedKeyFile]
        var plain: [String] = []
        for line in uncommented {
            let key = line.split(separator: "=")[0].trimmingCharacters(in: .whitespaces)
            if let expected = derived[key] {
                #expect(line.hasSuffix("= " + expected), "\(line)")
            } else {
                plain.append(line)
            }
        }
        #expect(try DaemonConfiguration.parse(plain.joined(separator: "\n")) == DaemonConfiguration(),
                "a documented default differs from the code's")
    }

    @Test("values, unknown keys, repeated keys and bad values", arguments: [
        ("audit_retention_days = 30", nil),
        ("audit_retention_days = 0", nil),
        ("audit_retention_days = -1", "t.conf:1: 'audit_retention_days' must be a whole number from 0 to 36500"),
        ("window = 2\nmax_failures = 5\n\n# comment\nwindow = 3", "t.conf:5: 'window' is set twice"),
        ("no_such_key = 1", "t.conf:1: unknown key 'no_such_key'"),
        ("just words", "t.conf:1: expected 'key = value'"),
        ("require = sometimes", "t.conf:1: require must be nobody, everyone or groups"),
        ("previous_key_files = /etc/twofold/a.key, ./b.key ,", nil),
        ("previous_key_files = /etc/twofold/a.key, b.key", "t.conf:1: 'previous_key_files' must be a comma-separated list of paths; 'b.key' is not a path"),
    ] as [(String, String?)])
    func parse(text: String, error: String?) {
        do {
            let config = try DaemonConfiguration.parse(text, source: "t.conf")
            #expect(error == nil, "parsed although it should fail with \(error ?? "")")
            if text == "audit_retention_days = 30" { #expect(config.auditRetentionDays == 30) }
            if text == "audit_retention_days = 0" { #expect(config.auditRetentionDays == 0) }
            if text.hasPrefix("previous_key_files") { #expect(config.previousKeyFiles == ["/etc/twofold/a.key", "./b.key"]) }
        } catch let failure as ConfigurationError {
            #expect(failure.message == error)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite("audit retention")
struct AuditPruningTests {
    @Test("records past the retention are deleted in batches; newer ones and a 0 retention keep everything")
    func prunesOldRecordsOnly() async throws {
        let day: Int64 = 86_400_000
        let now: Int64 = 1_800_000_000_000
        let world = try await InProcessDaemon(policy: PolicyDocument(), now: now)
        defer { world.close() }
        // 40 records 40..1 days old, oldest first (as they would have been written).
        let records = (0..<40).map { i in
            StoreMutation.audit(AuditRecord(timeMillis: now - Int64(40 - i) * day + 1, action: "verify", user: "u\(i)", outcome: "success"))
        }
        _ = try await world.store.commit(records)

        let keepAll = AuditPruner(store: world.store, clock: world.clock, retentionDays: 0, logger: Logger(label: "test"))
        #expect(await keepAll.pruneNow() == 0)
        #expect(try await world.store.audit(AuditQuery(limit: 100)).count == 40)

        // Keep 10 days, deleting 7 at a time: 30 records go, in five batches.
        let pruner = AuditPruner(store: world.store, clock: world.clock, retentionDays: 10, batch: 7, logger: Logger(label: "test"))
        #expect(await pruner.pruneNow() == 30)
        let left = try await world.store.audit(AuditQuery(limit: 100))
        #expect(left.map(\.user) == (30..<40).map { "u\($0)" })
        #expect(left.allSatisfy { $0.timeMillis >= now - 10 * day })
        // Nothing more to do.
        #expect(await pruner.pruneNow() == 0)
        // A day later, one more record is past the retention.
        world.clock.advance(millis: day)
        #expect(await pruner.pruneNow() == 1)
    }
}
