import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldDaemon
import TwofoldProtocol
@testable import TwofoldSQLite
import TwofoldStore
import TwofoldTestSupport

/// `twofoldd move-in` with real parts: a single host's store made by a real twofoldd on SQLite
/// (imports, logins, recovery codes, a lock, a stored policy), moved into a tier on PostgreSQL
/// while its server runs, then logins through the tier and through the host's relay.
extension HeavyDaemonSuites {
@Suite("Moving a host in: twofoldd move-in", .serialized)
struct MoveInTests {
    /// A single host's store, populated through its twofoldd, then stopped.
    struct HostFixture {
        let daemon: DaemonProcess
        var apps: [String: TestAccount] = [:]
        /// Codes the host accepted (alice's TOTP code, bob's first recovery code).
        var used: [String: String] = [:]
        var recoveryCodes: [String] = []

        var database: String { daemon.directory + "/state/twofold.sqlite" }
        var keyFile: String { daemon.directory + "/state/twofold.key" }

        init() throws {
            daemon = try DaemonProcess(extraConfig: "max_failures = 3")
            for user in ["alice", "bob", "carol", "dave"] { apps[user] = try daemon.provision(user) }
            used["alice"] = apps["alice"]!.code()
            guard try daemon.login("alice", answer: used["alice"]).verdict == .success else { throw HarnessError("alice's login on the host") }
            let codes = try daemon.control(.regenerateRecoveryCodes(user: "bob", code: apps["bob"]!.code()))
            guard case .recoveryCodes(let issued) = codes, issued.count > 2 else { throw HarnessError("recovery codes: \(codes)") }
            recoveryCodes = issued
            guard try daemon.login("bob", answer: issued[0]).verdict == .success else { throw HarnessError("bob's recovery code on the host") }
            for _ in 0..<3 { _ = try daemon.login("carol", answer: apps["carol"]!.wrongCode()) }
            guard try daemon.status("carol").lockedUntilMillis != nil else { throw HarnessError("carol is not locked") }
            guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("policy show") }
            policy.window = 2
            guard try daemon.control(.policySet(policy)) == .ok else { throw HarnessError("policy set") }
            daemon.stop()
        }
    }

    /// Runs `twofoldd move-in` with the server's config; its exit status, report and text.
    static func moveIn(_ server: DaemonProcess, host: HostFixture, name: String = "host-a", _ flags: [String] = [])
        throws -> (status: Int32, report: MoveInReport?, output: String) {
        let result = try ChildProcess.run([TestPaths.twofoldd, "move-in", "--config", server.configPath, "--host", name,
                                           "--database", host.database, "--key-file", host.keyFile] + flags)
        guard flags.contains("--json") else { return (result.status, nil, result.output) }
        // The JSON document alone (a log line on stderr could precede it).
        guard let start = result.output.range(of: "{\n")?.lowerBound else { return (result.status, nil, result.output) }
        let report = try? JSONDecoder().decode(MoveInReport.self, from: Data(result.output[start...].utf8))
        return (result.status, report, result.output)
    }

    static func hostRecords(_ server: DaemonProcess, _ host: String = "host-a") throws -> [AuditEntry] {
        guard case .audit(let entries) = try server.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 10_000, host: host)) else {
            throw HarnessError("audit")
        }
        return entries
    }

    @Test("a host moves in: dry run, the move, logins through the tier and the relay, a conflict, the policy, a second run")
    func aHostMovesIn() throws {
        let host = try HostFixture()
        let fleet = try Fleet(servers: 1)
        let server = fleet.servers[0]
        // dave is enrolled in the tier with another secret: a conflict.
        let daveInTier = try server.provision("dave")
        let source = try Data(contentsOf: URL(fileURLWithPath: host.database))

        let dry = try Self.moveIn(server, host: host, ["--dry-run", "--json"])
        #expect(dry.status == 1, "\(dry.output)")
        let planned = try #require(dry.report, "\(dry.output)")
        #expect(planned.dryRun && planned.moved == ["alice", "bob", "carol"] && planned.conflicts.map(\.user) == ["dave"])
        #expect(try server.status("alice").method == nil, "a dry run writes nothing")
        #expect(try Self.hostRecords(server).isEmpty)

        let run = try Self.moveIn(server, host: host, ["--json"])
        #expect(run.status == 1, "\(run.output)")
        let report = try #require(run.report, "\(run.output)")
        #expect(report.moved == ["alice", "bob", "carol"] && report.alreadyMoved.isEmpty)
        #expect(report.conflicts.first?.reason.contains("another secret") == true, "\(report.conflicts)")
        #expect(report.recoveryCodeSets == 1 && report.recoveryCodes == host.recoveryCodes.count - 1)
        #expect(report.policy == "different" && report.policyDifferences.map(\.field) == ["maxFailures", "window"], "\(report.policyDifferences)")
        #expect(report.auditRecords > 0 && report.hostRegistered == false)
        #expect(try Data(contentsOf: URL(fileURLWithPath: host.database)) == source, "the host's file is left as it was")

        // Through the tier and through the host's relay, with the old secrets; used codes stay used.
        let relay = try fleet.relay("host-a")
        #expect(try server.login("alice", answer: host.used["alice"]).verdict != .success, "a code used on the host")
        #expect(try relay.login("alice", answer: host.apps["alice"]!.code(offset: 1)).verdict == .success)
        #expect(try relay.login("bob", answer: host.recoveryCodes[0]).verdict != .success, "a recovery code used on the host")
        #expect(try relay.login("bob", answer: host.recoveryCodes[1]).verdict == .success, "a host's recovery code works in the tier")
        #expect(try server.login("bob", answer: host.recoveryCodes[1]).verdict != .success, "once")
        #expect(try server.status("carol").lockedUntilMillis != nil)
        #expect(try relay.login("carol", answer: host.apps["carol"]!.code()).verdict != .success, "still locked")
        #expect(try server.login("dave", answer: host.apps["dave"]!.code()).verdict != .success, "dave was not touched")
        #expect(try server.login("dave", answer: daveInTier.code()).verdict == .success)

        let records = try Self.hostRecords(server)
        #expect(records.contains { $0.action == "verify" && $0.user == "alice" && $0.outcome == "success" })
        #expect(records.contains { $0.action == "move-in" && $0.outcome == "partial" })

        // Again: everything already moved, no audit record copied twice.
        let again = try Self.moveIn(server, host: host, ["--json"])
        let second = try #require(again.report, "\(again.output)")
        #expect(second.moved.isEmpty && second.alreadyMoved == ["alice", "bob", "carol"] && second.updated == 0 && second.auditRecords == 0)
        let after = try Self.hostRecords(server)
        #expect(after.filter { $0.action != "move-in" }.count == records.filter { $0.action != "move-in" }.count)

        // The text ends with what to do on the host.
        let text = try Self.moveIn(server, host: host, ["--dry-run"])
        #expect(text.output.contains("role = relay") && text.output.contains("conflict: dave"), "\(text.output)")
    }

    @Test("a store of schema v4 (from before fleet mode) moves in from a copy, its own files left as they were")
    func aV4StoreMovesIn() throws {
        let directory = try makeTemporaryDirectory("v4")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keyFile = directory + "/twofold.key", database = directory + "/twofold.sqlite"
        let keys = try SealingKeys.loadOrCreate(keyFile: keyFile)
        let app = try TestAuthenticator.random()
        let secret = try Sealer(keys: keys).seal(app.secret, .factor, user: "erin", factor: "app")
        let pepper = try #require(try SQLiteStore.testingCreate(path: database, keys: keys, upTo: "v4", sql: """
            INSERT INTO users (name) VALUES ('erin');
            INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, counter, drift, added_at)
                VALUES ('erin', 'app', 'totp', 'SHA1', 6, 30, X'\(Crypto.hex(secret))', 0, 0, 1000);
            INSERT INTO audit (time, action, user, outcome) VALUES (1000, 'enroll', 'erin', 'success');
            """))
        let code = try RecoveryCodes.generate(count: 1)[0]
        let hash = try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical(code)!, pepper: pepper)
        _ = try SQLiteStore.testingCreate(path: database, keys: keys, upTo: "v4", sql: """
            INSERT INTO recovery_codes (user, idx, sealed) VALUES ('erin', 0, X'\(Crypto.hex(try Sealer(keys: keys).sealRecovery(hash, user: "erin", index: 0)))');
            """)
        let files = try Self.contents(of: directory)

        let cluster = try PostgresCluster()
        let tierKey = try SharedKey()
        let server = try DaemonProcess.onPostgres(cluster, database: try cluster.createScratchDatabase(), keyFile: tierKey.path)
        let result = try ChildProcess.run([TestPaths.twofoldd, "move-in", "--config", server.configPath, "--host", "old-host",
                                           "--database", database, "--key-file", keyFile])
        #expect(result.status == 0 && result.output.contains("users: 1 moved"), "\(result.output)")
        #expect(try Self.contents(of: directory) == files, "the host's files are left as they were")
        #expect(try server.login("erin", answer: app.code()).verdict == .success)
        #expect(try server.login("erin", answer: code).verdict == .success, "a recovery code of a v4 store")
        #expect(try Self.hostRecords(server, "old-host").contains { $0.action == "enroll" && $0.user == "erin" })
    }

    @Test("SSH keys move with their user: one with only SSH keys (no factor) is moved too, and one with only an SSH key rule")
    func sshKeysMoveIn() throws {
        let directory = try makeTemporaryDirectory("ssh")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keyFile = directory + "/twofold.key", database = directory + "/twofold.sqlite"
        let keys = try SealingKeys.loadOrCreate(keyFile: keyFile)
        // An sk- Ed25519 key's blob: the type, 32 bytes of key, the application.
        let fields: [[UInt8]] = [Array("sk-ssh-ed25519@openssh.com".utf8), Array(repeating: 7, count: 32), Array("ssh:".utf8)]
        let blob = fields.flatMap { field -> [UInt8] in [0, 0, 0, UInt8(field.count)] + field }
        _ = try SQLiteStore.testingCreate(path: database, keys: keys, upTo: "v9", sql: """
            INSERT INTO users (name) VALUES ('frank');
            INSERT INTO ssh_keys (user, name, type, blob, comment, added_at)
                VALUES ('frank', 'laptop', 'sk-ssh-ed25519@openssh.com', X'\(Crypto.hex(blob))', 'frank@laptop', 1000);
            INSERT INTO users (name, ssh_key_rule) VALUES ('gina', 'any,verify-required');
            """)
        let cluster = try PostgresCluster()
        let scratch = try cluster.createScratchDatabase()
        let tierKey = try SharedKey()
        let server = try DaemonProcess.onPostgres(cluster, database: scratch, keyFile: tierKey.path)
        let result = try ChildProcess.run([TestPaths.twofoldd, "move-in", "--config", server.configPath, "--host", "old-host",
                                           "--database", database, "--key-file", keyFile])
        #expect(result.status == 0 && result.output.contains("users: 2 moved"), "\(result.output)")
        let stored = try cluster.psql("SELECT user_name, name, type, encode(blob, 'hex'), comment FROM ssh_keys", url: cluster.url(database: scratch))
        #expect(stored == "frank|laptop|sk-ssh-ed25519@openssh.com|\(Crypto.hex(blob))|frank@laptop", "\(stored)")
        let rules = try cluster.psql("SELECT name, ssh_key_rule FROM users ORDER BY name", url: cluster.url(database: scratch))
        #expect(rules == "frank|\ngina|any,verify-required", "\(rules)")
    }

    /// Every file of a directory, by name.
    static func contents(of directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        }
        return files
    }
}
}
