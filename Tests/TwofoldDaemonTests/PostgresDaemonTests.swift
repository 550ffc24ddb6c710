import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension DaemonProcess {
    /// A daemon on a PostgreSQL database: the cluster's password file, the given sealing key (every
    /// daemon on one database shares it), directly or through the cluster's PgBouncer.
    static func onPostgres(_ cluster: PostgresCluster, database: String, keyFile: String, throughBouncer: Bool = false,
                           extraConfig: String = "") throws -> DaemonProcess {
        let url = throughBouncer ? cluster.bouncerURL(database: database) : cluster.url(database: database)
        return try DaemonProcess(extraConfig: """
            store = postgresql
            postgresql_url = \(url)
            postgresql_password_file = \(cluster.passwordFile)
            key_file = \(keyFile)
            \(extraConfig)
            """)
    }
}

extension DaemonProcess {
    /// Sets `key_file` and `previous_key_files` in the config, the rest kept (a restart applies them).
    func setKeys(keyFile: String, previous: [String] = []) throws {
        let kept = try String(contentsOfFile: configPath, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("key_file") && !$0.hasPrefix("previous_key_files") }
        let lines = kept + ["key_file = \(keyFile)", "previous_key_files = \(previous.joined(separator: ", "))"]
        try lines.joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Applies a new config the way the procedure does: `--check-config` (its report returned), then a restart.
    @discardableResult
    func checkAndRestart() throws -> String {
        let check = try ChildProcess.run([TestPaths.twofoldd, "--config", configPath, "--check-config"])
        guard check.status == 0 else { throw HarnessError("--check-config: \(check.output)") }
        stop()
        try start()
        return check.output
    }

    /// The sealed values by key id ("format N" without one), as `twofoldctl rekey --check` reads them.
    func sealedCounts() throws -> [String: Int] {
        guard case .rekey(let report) = try control(.rekey(check: true, cursor: nil)), let counts = report.counts else {
            throw HarnessError("rekey check")
        }
        return Dictionary(counts.map { ($0.keyID ?? "format \($0.formatVersion)", $0.count) }, uniquingKeysWith: +)
    }
}

/// A value shared by threads, behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// A sealing key file (0600, 32 random bytes) for daemons that share a database; removed at deinit.
final class SharedKey {
    let directory: String
    var path: String { directory + "/twofold.key" }

    init() throws {
        directory = try makeTemporaryDirectory("key")
        let bytes = try Crypto.randomBytes(32)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw HarnessError("cannot write \(path)")
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// twofoldd on PostgreSQL over its real socket: the login path without a synchronous reader, several
/// daemons on one database (accept once, a shared throttle, a shared policy), and the rules for a
/// database that goes down or fails over to a standby that missed commits.
extension HeavyDaemonSuites {
@Suite("twofoldd on PostgreSQL", .serialized)
struct PostgresDaemonTests {
    @Test("a login on PostgreSQL: right code SUCCESS, the same code again and a wrong one FAILURE")
    func loginOverTheSocket() throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let daemon = try DaemonProcess.onPostgres(cluster, database: try cluster.createScratchDatabase(), keyFile: key.path)
        let alice = try daemon.provision("alice")
        let code = alice.code()
        #expect(try daemon.login("alice", answer: code).verdict == .success)
        #expect(try daemon.login("alice", answer: code).verdict == .failure)
        #expect(try daemon.login("alice", answer: alice.wrongCode()).verdict == .failure)
        #expect(try daemon.login("nobody-enrolled", answer: nil).verdict == .ignore)
        // What the login wrote is in the database, not in the daemon.
        let rows = try cluster.psql("SELECT count(*) FROM factors WHERE user_name = 'alice' AND last_step IS NOT NULL",
                                    url: cluster.url(database: try database(of: daemon)))
        #expect(rows == "1")

        // doctor names the store and judges its connection (loopback without TLS: no finding).
        let doctor = try run([TestPaths.twofoldctl, "doctor", "--json", "--no-sshd", "--pam-dir", daemon.directory, "--socket", daemon.socketPath])
        #expect(doctor.output.contains("\"store.postgresql\""), "\(doctor.output)")
        #expect(!doctor.output.contains("\"store.tls\""), "\(doctor.output)")
        // serverInfo gives the URL, which holds no password.
        guard case .serverInfo(let info) = try daemon.control(.serverInfo) else { throw HarnessError("serverInfo") }
        #expect(info.database.hasPrefix("postgresql://twofold@127.0.0.1:"))
        #expect(!info.database.contains(try cluster.password))
    }

    private func database(of daemon: DaemonProcess) throws -> String {
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        guard let line = config.split(separator: "\n").first(where: { $0.hasPrefix("postgresql_url") }),
              let url = URLComponents(string: String(line.split(separator: "=", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)) else {
            throw HarnessError("no postgresql_url in the daemon's config")
        }
        return String(url.path.dropFirst())
    }

    @Test("three daemons on one database, 1,000 users, each code sent to all three at once: exactly one success per user",
          arguments: [false, true])
    func threeDaemonsAcceptOnce(throughBouncer: Bool) throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let database = try cluster.createScratchDatabase()
        let daemons = try (0..<3).map { _ in
            try DaemonProcess.onPostgres(cluster, database: database, keyFile: key.path, throughBouncer: throughBouncer)
        }
        let apps = try daemons[0].provisionMany(prefix: "race", count: 1_000)
        let users = apps.keys.sorted()
        // Every user's current code to all three daemons at once, 16 users at a time.
        let (all, failures) = raceCodes(users: users, apps: apps, through: daemons)
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(all.count == users.count)
        let wrong = all.filter { $0.value.filter { $0 == .success }.count != 1 || $0.value.count != 3 }
        #expect(wrong.isEmpty, "users without exactly one success: \(wrong.prefix(5))")
        #expect(all.values.allSatisfy { $0.allSatisfy { $0 == .success || $0 == .failure } })
    }

    @Test("failures spread over three daemons lock at max_failures; a policy set through one is the next login's through another")
    func sharedThrottleAndPolicy() throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let database = try cluster.createScratchDatabase()
        let daemons = try (0..<3).map { _ in
            try DaemonProcess.onPostgres(cluster, database: database, keyFile: key.path, extraConfig: "max_failures = 4")
        }
        let bob = try daemons[0].provision("bob")
        for attempt in 0..<4 {
            let outcome = try daemons[attempt % 3].login("bob", answer: bob.wrongCode())
            // The failure that reaches max_failures locks: its verdict says so.
            #expect(outcome.verdict == (attempt == 3 ? .locked : .failure), "attempt \(attempt): \(outcome)")
        }
        #expect(try daemons[1].login("bob", answer: bob.code()).verdict == .locked)
        #expect(try daemons[2].status("bob").lockedUntilMillis != nil)

        // Nobody is required by the config; an admin requires everyone through daemon 0.
        #expect(try daemons[2].login("carol", answer: nil).verdict == .ignore)
        guard case .policy(var document) = try daemons[0].control(.policyShow) else { throw HarnessError("policy show") }
        document.require = "everyone"
        document.unenrolled = "deny"
        #expect(try daemons[0].control(.policySet(document)) == .ok)
        #expect(try daemons[2].login("carol", answer: nil).verdict == .denied)
        guard case .policy(let seen) = try daemons[1].control(.policyShow) else { throw HarnessError("policy show") }
        #expect(seen.require == "everyone")
    }

    @Test("PostgreSQL stopped mid-service: UNAVAILABLE before the prompt within the bound, a clear control error, logged once; back by itself")
    func outageAndRecovery() throws {
        let cluster = try PostgresCluster.startPrivate()
        let key = try SharedKey()
        // Bounds of 1 s each: an operation gives up within 2 s.
        let daemon = try DaemonProcess.onPostgres(cluster, database: "twofold", keyFile: key.path, extraConfig: """
            postgresql_connect_timeout_ms = 1000
            postgresql_statement_timeout_ms = 1000
            """)
        let dave = try daemon.provision("dave")
        #expect(try daemon.login("dave", answer: dave.code()).verdict == .success)

        try cluster.stopImmediate()
        for _ in 0..<3 {
            let started = Date()
            let outcome = try daemon.login("dave", answer: dave.code())
            #expect(outcome.verdict == .unavailable)
            #expect(outcome.transcript.allSatisfy { if case .promptEchoOff = $0 { return false } else { return true } }, "no prompt before UNAVAILABLE")
            // Within the daemon's own bounds (connect + statement: 2 s), not the module's 10 s.
            #expect(Date().timeIntervalSince(started) < 4)
        }
        guard case .error(let code, let message) = try daemon.control(.status(user: "dave")) else {
            Issue.record("a control request during the outage did not get an error"); return
        }
        #expect(code == .unavailable, "\(message)")
        #expect(daemon.process?.isRunning == true)

        try cluster.start()
        let next = try TestAuthenticator(secret: dave.secret).code(offset: 1)
        #expect(try daemon.login("dave", answer: next).verdict == .success, "service resumes without a restart")
        let log = daemon.log
        let down = log.components(separatedBy: "PostgreSQL unreachable").count - 1
        let back = log.components(separatedBy: "PostgreSQL reachable again").count - 1
        #expect(down == 1, "the outage is logged once, found \(down) times")
        #expect(back == 1, "the recovery is logged once, found \(back) times")
        // And counted: each login's read failed as unreachable; their verdicts; every verify batch was one commit.
        let metrics = try Scrape.parse(try daemon.ctlMetrics().output)
        #expect(metrics.value("twofold_store_errors_total", ["kind": "unreachable"]) >= 3)
        #expect(metrics.value("twofold_verifies_total", ["outcome": "unavailable"]) == 3)
        #expect(metrics.value("twofold_verifies_total", ["outcome": "success"]) == 2)
        #expect(metrics.value("twofold_commit_batch_size_count") >= 2)
    }

    @Test("a stale standby promoted: no code accepted on the old primary is accepted again; audited; recovery codes still log in",
          arguments: [false, true])
    func failoverToAStaleStandby(throughBouncer: Bool) throws {
        let cluster = try PostgresCluster.startPrivate()
        let key = try SharedKey()
        let daemon = try DaemonProcess.onPostgres(cluster, database: "twofold", keyFile: key.path, throughBouncer: throughBouncer)
        let users = (0..<20).map { "fo\($0)" }
        var accounts: [TestAccount] = []
        for user in users { accounts.append(try daemon.provision(user)) }
        let scratch = ["11223344", "55667788"]
        let rita = try TestAuthenticator.random()
        guard try daemon.control(.importEnrollment(user: "rita", source: .googleAuthenticator(
            "\(rita.base32)\n\" TOTP_AUTH\n\(scratch.joined(separator: "\n"))\n"))) == .imported(recoveryCodes: 2) else {
            throw HarnessError("import with scratch codes")
        }
        let standby = try cluster.startStandby()
        try standby.waitCaughtUp()
        try standby.stop()

        // Accepted on the primary after the standby stopped: the standby never hears of these.
        var used: [(TestAccount, String)] = []
        for account in accounts {
            let code = account.code()
            #expect(try daemon.login(account.user, answer: code).verdict == .success)
            used.append((account, code))
        }
        try cluster.stopImmediate()
        let timeline = try standby.takeOver()
        #expect(timeline >= 2)

        for (account, code) in used {
            let outcome = try daemon.login(account.user, answer: code)
            #expect(outcome.verdict == .failure, "\(account.user): a code accepted before the failover was accepted again")
        }
        // Service resumed: a recovery code (not a replay) logs in.
        #expect(try daemon.login("rita", answer: scratch[0]).verdict == .success)
        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit")
        }
        #expect(entries.contains { $0.action == "failover" }, "the watermark raise is audited")
    }

    @Test("--check-config on PostgreSQL connects and checks the schema and the key; a bad password or key is a clear error without the secret")
    func checkConfig() throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let database = try cluster.createScratchDatabase()
        let daemon = try DaemonProcess.onPostgres(cluster, database: database, keyFile: key.path)
        let good = try run([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(good.status == 0, "\(good.output)")
        #expect(good.output.contains("known to the database"), "\(good.output)")
        #expect(good.output.hasSuffix("configuration OK\n"), "\(good.output)")

        // A wrong password: the connection's error, never the password.
        let wrongPassword = daemon.directory + "/wrong-password"
        try "not-the-password\n".write(toFile: wrongPassword, atomically: true, encoding: .utf8)
        chmod(wrongPassword, 0o600)
        let badConfig = daemon.directory + "/bad.conf"
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "postgresql_password_file = \(cluster.passwordFile)", with: "postgresql_password_file = \(wrongPassword)")
            .write(toFile: badConfig, atomically: true, encoding: .utf8)
        let refused = try run([TestPaths.twofoldd, "--config", badConfig, "--check-config"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("28P01") && refused.output.contains("password authentication failed"), "the server's reason: \(refused.output)")
        #expect(!refused.output.contains("not-the-password"))
        #expect(!refused.output.contains(try cluster.password))

        // Another key: the database knows none of the daemon's keys.
        let other = try SharedKey()
        let otherConfig = daemon.directory + "/other-key.conf"
        try text.replacingOccurrences(of: "key_file = \(key.path)", with: "key_file = \(other.path)").write(toFile: otherConfig, atomically: true, encoding: .utf8)
        let wrongKey = try run([TestPaths.twofoldd, "--config", otherConfig, "--check-config"])
        #expect(wrongKey.status != 0)
        #expect(wrongKey.output.contains("postgresql://"), "the error names the database: \(wrongKey.output)")
    }

    @Test("a key rotation with two daemons on one database, step by step: logins on both at every step, twofoldctl rekey through one, recovery codes after the old key is gone")
    func rotationWithTwoDaemons() throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        let old = try SharedKey()
        let daemons = try (0..<2).map { _ in try DaemonProcess.onPostgres(cluster, database: database, keyFile: old.path) }
        let users = try importRotatedUsers(through: daemons[0], prefix: "rot", count: 24)
        let oldID = try #require(try daemons[0].sealedCounts().keys.first)
        #expect(try daemons[1].sealedCounts() == [oldID: 24 * 3 + 1], "a secret and 2 codes each, the pepper")
        // Each step logs in users not logged in yet, two on each daemon: no login is a replay.
        var fresh = users.makeIterator()
        func logInOnBoth(_ step: String) throws {
            for daemon in daemons {
                for _ in 0..<2 {
                    guard let user = fresh.next() else { throw HarnessError("no user left to log in") }
                    #expect(try daemon.login(user.user, answer: user.app.code()).verdict == .success, "\(step): \(user.user) on \(daemon.socketPath)")
                }
            }
        }
        try logInOnBoth("before")

        // 1. The new key, copied to each daemon, as a previous key; restarted one at a time.
        let made = try ChildProcess.run([TestPaths.twofoldd, "--new-key-file", old.directory + "/new.key"])
        let newID = try #require(made.output.split(separator: " ").dropFirst(2).first.map(String.init), "\(made.output)")
        let newKeys = try daemons.map { daemon in
            let path = daemon.directory + "/new.key"
            try FileManager.default.copyItem(atPath: old.directory + "/new.key", toPath: path)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            return path
        }
        try daemons[0].setKeys(keyFile: old.path, previous: [newKeys[0]])
        #expect(try daemons[0].checkAndRestart().contains("previous key \(newID) (\(newKeys[0])): new to the database"))
        try daemons[1].setKeys(keyFile: old.path, previous: [newKeys[1]])
        #expect(try daemons[1].checkAndRestart().contains("previous key \(newID) (\(newKeys[1])): known to the database"), "registered by the first")
        try logInOnBoth("step 1")

        // 2. Sealing with the new key. Between the two restarts, what the first seals the second opens.
        try daemons[0].setKeys(keyFile: newKeys[0], previous: [old.path])
        try daemons[0].checkAndRestart()
        let late = try importRotatedUsers(through: daemons[0], prefix: "late", count: 1)[0]
        #expect(try daemons[1].login(late.user, answer: late.app.code()).verdict == .success, "sealed with the new key, opened with it as a previous key")
        try daemons[1].setKeys(keyFile: newKeys[1], previous: [old.path])
        try daemons[1].checkAndRestart()
        try logInOnBoth("step 2")
        #expect(try daemons[0].sealedCounts() == [oldID: 24 * 3 + 1, newID: 3])

        // 3. twofoldctl rekey through one daemon: every secret under the new key, for both.
        let rekey = try ChildProcess.run([TestPaths.twofoldctl, "rekey", "--socket", daemons[1].socketPath])
        #expect(rekey.status == 0 && rekey.output.contains("every secret is now under key \(newID)"), "\(rekey.output)")
        #expect(try daemons[0].sealedCounts() == [newID: 25 * 3 + 1])
        try logInOnBoth("after rekey")

        // 4. The old key removed from both: everyone still logs in, and a recovery code made under the old key works, once.
        for (daemon, key) in zip(daemons, newKeys) {
            try daemon.setKeys(keyFile: key)
            try daemon.checkAndRestart()
        }
        try logInOnBoth("old key removed")
        #expect(try daemons[0].login(users[0].user, answer: users[0].recoveryCodes[1]).verdict == .success)
        #expect(try daemons[1].login(users[0].user, answer: users[0].recoveryCodes[1]).verdict == .failure, "used once, across daemons")
        #expect(try daemons[1].login(late.user, answer: late.recoveryCodes[0]).verdict == .success)
        for user in Array(fresh) {
            #expect(try daemons[1].login(user.user, answer: user.app.code()).verdict == .success, "\(user.user)")
        }
    }

    /// Imports `count` users PREFIX0... through `daemon`, each with a TOTP app and two recovery codes
    /// (google-authenticator scratch codes).
    private func importRotatedUsers(through daemon: DaemonProcess, prefix: String, count: Int) throws -> [RotatedUser] {
        let users = try (0..<count).map { i in
            RotatedUser(user: "\(prefix)\(i)", app: try TestAuthenticator.random(),
                        recoveryCodes: (0..<2).map { _ in String(format: "%08d", Int.random(in: 10_000_000...99_999_999)) })
        }
        let imports = users.map { user in
            EnrollmentImport(user: user.user, source: .googleAuthenticator(([user.app.base32, "\" TOTP_AUTH"] + user.recoveryCodes).joined(separator: "\n") + "\n"))
        }
        guard case .importedMany(let outcomes) = try daemon.control(.importEnrollments(imports)), outcomes.allSatisfy({ $0.error == nil }) else {
            throw HarnessError("bulk import failed")
        }
        return users
    }
}
}

/// A user of the rotation test: a TOTP app and the recovery codes imported with it.
struct RotatedUser {
    var user: String
    var app: TestAuthenticator
    var recoveryCodes: [String]
}
