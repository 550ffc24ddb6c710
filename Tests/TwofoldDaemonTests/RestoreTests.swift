import Foundation
import Logging
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldDaemon
import TwofoldProtocol
import TwofoldStore
import TwofoldTestSupport

/// `twofoldd restore` with real parts: a real twofoldd on SQLite makes the store; a backup of it
/// (`twofoldctl backup`, damaged here with SQLiteEdit for the refusals); logins after
/// the backup; `twofoldd restore` as a subprocess into another daemon's state directory; then that
/// daemon started on the restored store and logins checked over its socket.
extension HeavyDaemonSuites {
@Suite("Restoring a store: twofoldd restore", .serialized)
struct RestoreTests {
    /// A host whose store was backed up, with what happened after the backup.
    struct BackedUpHost {
        let daemon: DaemonProcess
        let backup: String
        let auditExport: String
        var apps: [String: TestAccount] = [:]
        /// Codes accepted after the backup: alice's TOTP code, bob's HOTP code (counter 5), carol's first recovery code.
        var usedAfter: [String: String] = [:]
        var carolCodes: [String] = []

        var keyFile: String { daemon.stateDirectory + "/twofold.key" }

        init() throws {
            daemon = try DaemonProcess()
            backup = daemon.directory + "/backup.sqlite"
            auditExport = daemon.directory + "/audit.json"
            apps["alice"] = try daemon.provision("alice")
            apps["bob"] = try daemon.provision("bob", parameters: OTPParameters(method: .hotp))
            apps["carol"] = try daemon.provision("carol")
            apps["dave"] = try daemon.provision("dave")
            guard case .recoveryCodes(let codes) = try daemon.control(.regenerateRecoveryCodes(user: "carol", code: apps["carol"]!.code())) else {
                throw HarnessError("carol's recovery codes")
            }
            carolCodes = codes
            // The backup, taken while the daemon serves: after every record so far (the same millisecond would count as after it).
            guard case .audit(let records) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 10_000)) else {
                throw HarnessError("audit")
            }
            // The real command; a record of the same millisecond as the snapshot counts as after it, so
            // the clock must have passed the last one (at most a millisecond of spinning).
            let last = records.map(\.timeMillis).max() ?? 0
            while Int64(Date().timeIntervalSince1970 * 1_000) <= last {}
            let taken = try ChildProcess.run([TestPaths.twofoldctl, "backup", "--output", backup, "--socket", daemon.socketPath])
            guard taken.status == 0 else { throw HarnessError("twofoldctl backup: \(taken.output)") }
            try afterTheBackup()
            daemon.stop()
        }

        /// Logins and a revocation after the backup, and the audit exported with the real CLI.
        private mutating func afterTheBackup() throws {
            usedAfter["alice"] = apps["alice"]!.code()
            usedAfter["bob"] = OneTimeCode.hotp(secret: apps["bob"]!.secret, counter: 5, digits: 6, algorithm: .sha1)
            usedAfter["carol"] = carolCodes[0]
            for user in ["alice", "bob", "carol"] {
                guard try daemon.login(user, answer: usedAfter[user]).verdict == .success else { throw HarnessError("\(user)'s login after the backup") }
            }
            // bob goes on past the look-ahead window (counters 6 to 15): only the audit can tell the restore how far.
            for counter in UInt64(6)...15 {
                let code = OneTimeCode.hotp(secret: apps["bob"]!.secret, counter: counter, digits: 6, algorithm: .sha1)
                guard try daemon.login("bob", answer: code).verdict == .success else { throw HarnessError("bob's counter \(counter)") }
            }
            guard try daemon.control(.removeFactor(user: "dave", name: FactorName.imported, code: nil)) == .ok else { throw HarnessError("dave's factor") }
            let export = try ChildProcess.run([TestPaths.twofoldctl, "audit", "--json", "--limit", "10000", "--socket", daemon.socketPath])
            guard export.status == 0 else { throw HarnessError("twofoldctl audit --json: \(export.output)") }
            try export.output.write(toFile: auditExport, atomically: true, encoding: .utf8)
        }
    }

    /// A daemon not yet started whose state directory holds only the host's key file (restored apart).
    static func freshDaemon(key: String) throws -> DaemonProcess {
        let daemon = try DaemonProcess(start: false)
        try FileManager.default.createDirectory(atPath: daemon.stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: key, toPath: daemon.stateDirectory + "/twofold.key")
        return daemon
    }

    /// `twofoldd restore --config` of `daemon`: its exit status, the JSON report (with --json) and the output.
    static func restore(_ daemon: DaemonProcess, _ arguments: [String]) throws -> (status: Int32, report: RestoreReport?, output: String) {
        let result = try ChildProcess.run([TestPaths.twofoldd, "restore", "--config", daemon.configPath] + arguments)
        guard arguments.contains("--json"), let start = result.output.range(of: "{\n")?.lowerBound else { return (result.status, nil, result.output) }
        return (result.status, try? JSONDecoder().decode(RestoreReport.self, from: Data(result.output[start...].utf8)), result.output)
    }

    /// Every file under `directory`, by relative path, with its contents (sub-directories too).
    static func snapshot(_ directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return files }
        for case let path as String in walker {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory)
            files[path] = isDirectory.boolValue ? Data() : try Data(contentsOf: URL(fileURLWithPath: directory + "/" + path))
        }
        return files
    }

    @Test("a backup restored into a fresh state directory: old secrets log in, codes used after it are refused, revocations re-applied")
    func restoreIntoAFreshStateDirectory() throws {
        let host = try BackedUpHost()
        let daemon = try Self.freshDaemon(key: host.keyFile)
        let run = try Self.restore(daemon, ["--from", host.backup, "--audit", host.auditExport, "--json"])
        #expect(run.status == 0, "\(run.output)")
        let report = try #require(run.report, "\(run.output)")
        #expect(report.takenFromHost == HostName.local && report.replay.users == 4 && report.replay.factors == 4)
        // carol's watermark may already be at the current step (her code for new recovery codes, just before the backup).
        #expect((2...3).contains(report.replay.watermarksRaised) && report.replay.countersAdvanced == 1, "\(report.replay)")
        #expect(report.codeUsesFound == 12, "alice's code and bob's eleven: \(report.codeUsesFound)")
        #expect(report.replay.recoverySets == 1 && report.replay.recoverySetsInvalidated == 0)
        #expect(report.reapplied.contains { $0.user == "dave" && $0.applied && $0.result.contains("factor 'imported' removed") }, "\(report.reapplied)")
        let text = try Self.restore(daemon, ["--from", host.backup, "--replace", "--dry-run"])
        #expect(text.output.contains(RestoreReport.rule), "the rule is always stated: \(text.output)")

        try daemon.start()
        #expect(try daemon.login("alice", answer: host.usedAfter["alice"]).verdict == .failure, "a TOTP code used after the backup")
        #expect(try daemon.login("alice", answer: host.apps["alice"]!.code(offset: 1)).verdict == .success, "the next step's code")
        #expect(try daemon.login("bob", answer: host.usedAfter["bob"]).verdict == .failure, "an HOTP counter used after the backup")
        let bobLast = OneTimeCode.hotp(secret: host.apps["bob"]!.secret, counter: 15, digits: 6, algorithm: .sha1)
        #expect(try daemon.login("bob", answer: bobLast).verdict == .failure, "a counter used past the window, known from the audit")
        let bobNext = OneTimeCode.hotp(secret: host.apps["bob"]!.secret, counter: 16, digits: 6, algorithm: .sha1)
        #expect(try daemon.login("bob", answer: bobNext).verdict == .success, "the counter past every use the audit names")
        #expect(try daemon.login("carol", answer: host.carolCodes[1]).verdict == .success, "the backup's recovery codes stay without --rotate-recovery-codes")
        #expect(try daemon.login("dave", answer: host.apps["dave"]!.code()).verdict != .success, "a factor removed after the backup")
        #expect(try daemon.status("dave").factors?.isEmpty ?? true)
        guard case .audit(let records) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 10_000)) else {
            throw HarnessError("audit")
        }
        #expect(records.contains { $0.action == "restore" && $0.outcome == "success" }, "the restore is audited in the restored store")

        // While a daemon answers on the socket: refused, nothing changed.
        let before = try Self.snapshot(daemon.stateDirectory)
        let running = try Self.restore(daemon, ["--from", host.backup, "--replace"])
        #expect(running.status == 2 && running.output.contains("answers on"), "\(running.output)")
        #expect(try Self.snapshot(daemon.stateDirectory).keys.sorted() == before.keys.sorted(), "no copy made, nothing kept aside")
        daemon.stop()

        // --replace --rotate-recovery-codes: the old database kept aside, the backup's recovery codes void.
        let again = try Self.restore(daemon, ["--from", host.backup, "--replace", "--rotate-recovery-codes", "--json"])
        let second = try #require(again.report, "\(again.output)")
        #expect(second.replay.recoverySetsInvalidated == 1 && second.keptAside != nil, "\(again.output)")
        #expect(FileManager.default.fileExists(atPath: second.keptAside ?? "-"), "the old database is kept, never deleted")
        try daemon.start()
        #expect(try daemon.login("carol", answer: host.carolCodes[2]).verdict != .success, "a recovery code of an invalidated set")
        let bobLater = OneTimeCode.hotp(secret: host.apps["bob"]!.secret, counter: 12, digits: 6, algorithm: .sha1)
        #expect(try daemon.login("bob", answer: bobLater).verdict == .success,
                "without --audit only the window rule applies: counter 12, used after the backup, works again (the documented limit)")
    }

    @Test("corrupt, truncated, wrong key, newer schema, no manifest, an existing database: refused with a clear error, nothing changed")
    func badBackupsAreRefused() throws {
        let host = try BackedUpHost()
        let daemon = try Self.freshDaemon(key: host.keyFile)
        let original = try Data(contentsOf: URL(fileURLWithPath: host.backup))
        let bad = daemon.directory + "/bad.sqlite"
        func refused(_ contents: Data, _ extra: [String] = [], _ expected: String, _ prepare: (() throws -> Void)? = nil) throws {
            try contents.write(to: URL(fileURLWithPath: bad))
            try prepare?()
            let before = try Self.snapshot(daemon.stateDirectory), backupBefore = try Data(contentsOf: URL(fileURLWithPath: bad))
            let run = try Self.restore(daemon, ["--from", bad] + extra)
            #expect(run.status == 2 && run.output.contains(expected), "expected '\(expected)': \(run.output)")
            #expect(try Self.snapshot(daemon.stateDirectory) == before, "the state directory is unchanged (\(expected))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: bad)) == backupBefore, "the backup is unchanged")
        }
        var corrupt = original
        // Every page but the first (the header stays readable: the damage is found by the check).
        for index in stride(from: 4096 + 100, to: corrupt.count, by: 61) { corrupt[index] ^= 0x5A }
        try refused(corrupt, [], "damaged or truncated")
        try refused(original.prefix(original.count / 2), [], "damaged or truncated")
        // Only an index damaged (the keys of the audit's by-user index): no read of the check goes
        // through it, only the integrity check finds it.
        var index = original
        let root = try SQLiteEdit.rootPage(path: host.backup, of: "audit_by_user")
        for offset in stride(from: root * 4096 - 600, to: root * 4096 - 8, by: 5) { index[offset] ^= 0x5A }
        try refused(index, [], "damaged or truncated")
        try refused(Data("not a database at all, just text\n".utf8) + Data(count: 4096), [], "not an intact SQLite database")
        let otherKey = try SharedKey()
        try refused(original, ["--key-file", otherKey.path], "was not sealed with the key file given")
        try refused(original, [], "newer than this twofoldd understands") {
            try Self.sqlite(bad, "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        }
        try refused(original, [], "--taken-at") {
            try Self.sqlite(bad, "DELETE FROM meta WHERE key LIKE 'backup/%'")
        }
        // A database in place and no --replace.
        try FileManager.default.copyItem(atPath: host.backup, toPath: daemon.sqlitePath)
        try refused(original, [], "give --replace")
    }

    static func sqlite(_ path: String, _ sql: String) throws {
        try SQLiteEdit.execute(path: path, sql: sql)
    }

    @Test("--postgresql: a database restored with pg_dump and pg_restore gets the same rules")
    func postgresqlRestore() throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let first = try cluster.createScratchDatabase()
        let source = try DaemonProcess.onPostgres(cluster, database: first, keyFile: key.path)
        let alice = try source.provision("alice")
        let dump = source.directory + "/twofold.dump"
        let taken = Int64(Date().timeIntervalSince1970 * 1_000)
        let dumped = try ChildProcess.run([cluster.binDirectory + "/pg_dump", "-Fc", "-f", dump, "-d", cluster.url(database: first)],
                                          environment: cluster.clientEnvironment)
        #expect(dumped.status == 0, "\(dumped.output)")
        let used = alice.code()
        #expect(try source.login("alice", answer: used).verdict == .success)
        source.stop()

        let second = try cluster.createScratchDatabase()
        let restored = try ChildProcess.run([cluster.binDirectory + "/pg_restore", "--no-owner", "-d", cluster.url(database: second), dump],
                                            environment: cluster.clientEnvironment)
        #expect(restored.status == 0, "\(restored.output)")
        let daemon = try DaemonProcess(extraConfig: """
            store = postgresql
            postgresql_url = \(cluster.url(database: second))
            postgresql_password_file = \(cluster.passwordFile)
            key_file = \(key.path)
            """, start: false)
        let without = try Self.restore(daemon, ["--postgresql"])
        #expect(without.status == 2 && without.output.contains("--taken-at"), "\(without.output)")
        let run = try Self.restore(daemon, ["--postgresql", "--taken-at", String(taken), "--json"])
        #expect(run.status == 0 && run.report?.replay.watermarksRaised == 1, "\(run.output)")
        try daemon.start()
        #expect(try daemon.login("alice", answer: used).verdict == .failure, "a code used after the dump")
        #expect(try daemon.login("alice", answer: alice.code(offset: 1)).verdict == .success)
    }

    @Test("the restore's clock is the daemon's, injectable: watermarks are raised to the step of that clock")
    func restoreUsesTheInjectedClock() async throws {
        let host = try BackedUpHost()
        let daemon = try Self.freshDaemon(key: host.keyFile)
        let later: Int64 = 4_000_000_000_000
        var options = Restore.Options(configFile: daemon.configPath)
        options.from = host.backup
        let report = try await Restore.run(options, environment: [:], clock: ManualClock(millis: later), logger: .init(label: "test"))
        #expect(report.nowMillis == later && report.replay.watermarksRaised == 3)
        try daemon.start()
        // Every code near the real now is of a step below the watermark of the injected clock.
        #expect(try daemon.login("alice", answer: host.apps["alice"]!.code(offset: 1)).verdict == .failure)
    }
}
}
