import Foundation
import Synchronization
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 17, part 2: SIGKILL under load. A real twofoldd (on SQLite, then on PostgreSQL), 64 clients
/// over its socket, each owning 4 HOTP users (with recovery codes) and logging in again and again
/// with right, wrong and replayed codes, while the daemon is SIGKILLed at random moments (a delay
/// drawn from a seeded generator), restarted on the same state, and killed again. HOTP makes every code
/// deterministic across restarts (twofoldd has no clock a test can set from outside; TOTP would
/// make "right" and "replayed" depend on the wall clock). The test keeps its own record of every
/// verdict; while every client is parked after a kill it reads the database read-only (Python's
/// SQLite, not the daemon's; psql on PostgreSQL) and checks, user by user:
///   - the database passes `PRAGMA integrity_check` (SQLite);
///   - the HOTP counter on disk is exactly the one the verdicts imply: past every code that got
///     SUCCESS, and past a code whose answer was lost with the daemon only if that code was used
///     (then it counts as used; if not, the next right code is that same one again, and must succeed);
///   - the recovery codes used on disk are the ones that got SUCCESS, plus at most the one lost;
/// and after every restart each client presents its users' newest successful code again (refused),
/// and at the end every user's newest codes and a sample of the older ones. Right codes must
/// succeed, wrong and replayed ones must be refused, and a client may see an error (a dropped or
/// refused connection, never a timeout) only once the kill was sent; every client must be parked
/// within 30 s of a kill (no hang).
///
/// CI runs 20 kills on each backend; `TWOFOLD_KILLS=1000` (or `scripts/kill-test.sh --kills 1000`) is
/// the long form, `TWOFOLD_KILL_SEED` replays a run's kill schedule and choices (the threads'
/// interleaving is not replayed), `TWOFOLD_KILL_BACKENDS` picks the backends. Like RekeyLoadTests it
/// runs in a `swift test` of its own (scripts/run-tests.sh): 64 busy clients on two cores would
/// starve the rest of the suite.
@Suite(.serialized) struct KillLoadTests {
    @Test("SIGKILL under 64 clients with right, wrong and replayed codes, restarted each time: no SUCCESS forgotten or given twice, the database whole, no client hangs",
          .timeLimit(.minutes(KillPlan.timeLimitMinutes)), arguments: KillBackend.selected)
    func killedUnderLoad(backend: KillBackend) async throws {
        let plan = KillPlan.current(backend)
        say("kill test (\(backend.rawValue)): \(plan) (replay: scripts/kill-test.sh --backend \(backend.rawValue) --kills \(plan.kills) --seed \(plan.seed))")
        let run = try await offPool { try KillRun(plan: plan, backend: backend) }
        let report = try await offPool { try run.run() }
        say(report.summary)
        #expect(report.violations.isEmpty, "\(report.violations.count) violations (seed \(plan.seed)):\n\(report.violations.prefix(20).joined(separator: "\n"))")
        #expect(report.kills == plan.kills, "the run stopped after \(report.kills) of \(plan.kills) kills")
        // The load was real: every kind of attempt happened, and the kills cut logins in flight.
        #expect(report.stats.successes > 0 && report.stats.wrongRefused > 0 && report.stats.replaysRefused > 0
                && report.stats.recoverySuccesses > 0, "\(report.stats)")
        #expect(report.stats.lostUsed + report.stats.lostUnused > 0, "no kill cut a login in flight: \(report.stats)")
        #expect(report.stats.restartReplaysRefused > 0, "\(report.stats)")
    }
}

/// Prints at once (a long run's output may go to a file, where print would hold it back).
func say(_ text: String) {
    print(text)
    fflush(nil)
}

/// Where the killed daemon keeps its state.
enum KillBackend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    /// The daemon's own SQLite file: checked read-only with `integrity_check` after each kill.
    case sqlite
    /// A scratch database on the private PostgreSQL cluster (make check's, or kill-test.sh's own).
    /// The server is not killed, only twofoldd: the server's own crash safety is not what is tested.
    case postgresql

    /// `TWOFOLD_KILL_BACKENDS` (sqlite, postgresql, comma-separated), default both.
    static var selected: [KillBackend] {
        guard let names = ProcessInfo.processInfo.environment["TWOFOLD_KILL_BACKENDS"], !names.isEmpty else { return allCases }
        return names.split(separator: ",").compactMap { KillBackend(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
    }

    var testDescription: String { rawValue }
}

/// What a run does, from the environment (the long form is the same test).
struct KillPlan: Sendable, CustomStringConvertible {
    /// Kills under load (`TWOFOLD_KILLS`, default 20).
    var kills: Int
    /// Seeds the kill delays and every client's choices (`TWOFOLD_KILL_SEED`, default random).
    var seed: UInt64
    /// A kill comes 0 ..< this many ms after the daemon is ready (`TWOFOLD_KILL_MAX_DELAY_MS`; default
    /// 300 on SQLite, 1,000 on PostgreSQL, where a restarted daemon takes ~200 ms to open its pool).
    var maxDelayMillis: Int
    /// One kill in this many also kills the next start before READY=1, then starts again.
    var startupKillEvery = 8
    static let clients = 64
    static let usersPerClient = 4
    static let recoveryCodesPerUser = 10

    static func current(_ backend: KillBackend) -> KillPlan {
        let environment = ProcessInfo.processInfo.environment
        return KillPlan(kills: kills,
                        seed: environment["TWOFOLD_KILL_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1 ... UInt64.max),
                        maxDelayMillis: environment["TWOFOLD_KILL_MAX_DELAY_MS"].flatMap(Int.init).map { max($0, 1) }
                            ?? (backend == .postgresql ? 1_000 : 300))
    }

    static var kills: Int { ProcessInfo.processInfo.environment["TWOFOLD_KILLS"].flatMap(Int.init).map { max($0, 1) } ?? 20 }

    /// A bound for each backend's run: ~0.5 s a kill on SQLite, ~1 s on PostgreSQL (two cores), with room.
    static var timeLimitMinutes: Int { 5 + kills / 30 }

    var description: String {
        "\(kills) kills, seed \(seed), delays 0..<\(maxDelayMillis) ms, \(Self.clients) clients × \(Self.usersPerClient) HOTP users"
    }
}

/// One HOTP user with recovery codes and the test's record of it. Touched only by the client that
/// owns it, or by the controller while every client is parked (the gate's lock orders the two).
final class KillUser: @unchecked Sendable {
    let index: Int
    let name: String
    let secret: SecretBytes
    /// The imported scratch codes, index by index as the store numbers them.
    let recoveryCodes: [String]
    /// The counter of the next right code: every lower counter's code was used (SUCCESS, or lost and found used).
    var next: UInt64 = 0
    /// A right code sent whose verdict was lost with the daemon: used or not, the database says.
    var lostCounter: UInt64?
    /// Every code that got SUCCESS (or was lost and found used), oldest first.
    var successes: [(counter: UInt64, code: String)] = []
    /// The newest success already presented again after a restart, and refused.
    var refusedAfterRestart: UInt64?
    var recoveryUsed: Set<Int> = []
    var recoveryLost: Int?
    /// Refusals and lost attempts since the last success: kept under max_failures (100) so that no
    /// lock refuses a right code.
    var failuresInARow = 0
    private var codes: [UInt64: String] = [:]

    init(index: Int, secret: SecretBytes, recoveryCodes: [String]) {
        self.index = index
        self.name = "kill\(index)"
        self.secret = secret
        self.recoveryCodes = recoveryCodes
    }

    func code(_ counter: UInt64) -> String {
        if let known = codes[counter] { return known }
        let made = OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: .sha1)
        codes[counter] = made
        return made
    }

    /// Codes the daemon would take as right now (the look-ahead window from `next`).
    func windowCodes() -> Set<String> { Set((next...(next + 11)).map(code)) }

    /// A code no counter near `next` has (so "wrong" is wrong whatever the daemon's counter).
    func wrongCode(_ rng: inout SeededGenerator) -> String {
        let near = Set((next.saturatingSubtract(12)...(next + 12)).map(code))
        while true {
            let candidate = String(format: "%06d", Int.random(in: 0..<1_000_000, using: &rng))
            if !near.contains(candidate) { return candidate }
        }
    }

    var unusedRecovery: [Int] {
        recoveryCodes.indices.filter { !recoveryUsed.contains($0) && recoveryLost != $0 }
    }
}

extension UInt64 {
    func saturatingSubtract(_ other: UInt64) -> UInt64 { self >= other ? self - other : 0 }
}

/// The clients' gate: they run in a generation (one life of the daemon) until an error, then park
/// until the controller has checked the database and restarted the daemon.
final class KillGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var generation = 0
    private var killed = 0
    /// Per client: the generation after which it is parked (-1: running).
    private var parkedAfter: [Int]
    private var stopped = false

    init(clients: Int) {
        parkedAfter = Array(repeating: -1, count: clients)
    }

    /// Parks `client` until a generation after `after` runs; nil once the run is over.
    func waitToRun(_ client: Int, after: Int) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        parkedAfter[client] = after
        condition.broadcast()
        while !stopped && generation <= after { condition.wait() }
        parkedAfter[client] = -1
        return stopped ? nil : generation
    }

    var isStopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped
    }

    func release(_ next: Int) {
        condition.lock()
        generation = next
        condition.broadcast()
        condition.unlock()
    }

    /// Recorded before the SIGKILL is sent: an error seen after this is the kill's.
    func markKilled(_ generation: Int) {
        condition.lock()
        killed = generation
        condition.unlock()
    }

    func wasKilled(_ generation: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return killed >= generation
    }

    /// Waits until every client is parked after `generation` (none still asleep from an earlier
    /// one, none running); false at the deadline.
    func waitUntilParked(after generation: Int, timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while parkedAfter.contains(where: { $0 != generation }) {
            if !condition.wait(until: deadline) { return !parkedAfter.contains { $0 != generation } }
        }
        return true
    }

    /// The clients not parked after `generation`.
    func notParked(after generation: Int) -> [Int] {
        condition.lock()
        defer { condition.unlock() }
        return parkedAfter.indices.filter { parkedAfter[$0] != generation }
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

struct KillStats: Sendable, CustomStringConvertible {
    var logins = 0
    var successes = 0
    var recoverySuccesses = 0
    var wrongRefused = 0
    var replaysRefused = 0
    var recoveryReplaysRefused = 0
    var restartReplaysRefused = 0
    var finalReplaysRefused = 0
    /// Attempts cut by a kill (an error instead of a verdict).
    var cut = 0
    /// Right codes whose answer was lost: found used on disk, or not.
    var lostUsed = 0
    var lostUnused = 0
    var lostRecoveryUsed = 0
    var lostRecoveryUnused = 0
    var errors: [String: Int] = [:]

    var description: String {
        "logins \(logins), successes \(successes) (+\(recoverySuccesses) recovery codes), refused: wrong \(wrongRefused), "
            + "replayed \(replaysRefused) (+\(recoveryReplaysRefused) recovery), after a restart \(restartReplaysRefused), at the end \(finalReplaysRefused); "
            + "cut by a kill \(cut), lost right codes found used \(lostUsed) / not used \(lostUnused) (recovery \(lostRecoveryUsed) / \(lostRecoveryUnused)); "
            + "errors \(errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
    }
}

struct KillReport {
    var kills: Int
    var startupKills: Int
    var stats: KillStats
    var violations: [String]
    var summary: String
}

/// What a client tries.
enum KillAttempt {
    case right(UInt64)
    case wrong(String)
    case replay(UInt64, String)
    case recovery(Int)
    case recoveryReplay(Int)
    /// After a restart: the user's newest code that got SUCCESS, again.
    case restartReplay(UInt64, String)
}

final class KillRun: @unchecked Sendable {
    let plan: KillPlan
    let daemon: DaemonProcess
    let backend: KillBackend
    /// PostgreSQL: the cluster, the database and the shared key (kept for the run).
    private var postgres: (cluster: PostgresCluster, database: String, key: SharedKey)?
    let users: [KillUser]
    private let gate = KillGate(clients: KillPlan.clients)
    private let stats = Mutex(KillStats())
    private let violations = Mutex<[String]>([])
    private var readyMillis: [Double] = []

    init(plan: KillPlan, backend: KillBackend) throws {
        self.plan = plan
        self.backend = backend
        // All clients come from 127.0.0.1 as root; each user has one dialog at a time (its client's).
        let limits = "max_dialogs_per_rhost = 1000\nmax_failures = 100"
        switch backend {
        case .sqlite:
            daemon = try DaemonProcess(extraConfig: limits)
        case .postgresql:
            let cluster = try PostgresCluster()
            let database = try cluster.createScratchDatabase()
            let key = try SharedKey()
            daemon = try DaemonProcess.onPostgres(cluster, database: database, keyFile: key.path, extraConfig: limits)
            postgres = (cluster, database, key)
        }
        var rng = SeededGenerator(seed: plan.seed ^ 0x5eed)
        var users: [KillUser] = []
        for i in 0..<(KillPlan.clients * KillPlan.usersPerClient) {
            let secret = SecretBytes(rng.bytes(20))
            var scratch: [String] = []
            while scratch.count < KillPlan.recoveryCodesPerUser {
                let code = String(format: "%08d", Int.random(in: 10_000_000...99_999_999, using: &rng))
                if !scratch.contains(code) { scratch.append(code) }
            }
            users.append(KillUser(index: i, secret: secret, recoveryCodes: scratch))
        }
        self.users = users
        for chunk in stride(from: 0, to: users.count, by: 200) {
            let items = users[chunk..<min(chunk + 200, users.count)].map { user in
                var raw = user.secret.copyBytes()
                defer { Crypto.wipe(&raw) }
                let file = ([Base32.encode(raw), "\" HOTP_COUNTER 0"] + user.recoveryCodes).joined(separator: "\n") + "\n"
                return EnrollmentImport(user: user.name, source: .googleAuthenticator(file))
            }
            guard case .importedMany(let outcomes) = try daemon.control(.importEnrollments(Array(items))),
                  outcomes.allSatisfy({ $0.error == nil && $0.recoveryCodes == KillPlan.recoveryCodesPerUser }) else {
                throw HarnessError("HOTP import failed")
            }
        }
    }

    /// Records a broken invariant (a long text, e.g. a daemon's log, keeps its start and its end).
    private func violation(_ text: String) {
        let kept = text.count <= 2_000 ? text : text.prefix(300) + " […] " + text.suffix(1_500)
        violations.withLock { $0.append(kept) }
    }

    // MARK: - The controller

    func run() throws -> KillReport {
        var rng = SeededGenerator(seed: plan.seed)
        let started = Date()
        let done = DispatchGroup()
        for client in 0..<KillPlan.clients {
            let seed = rng.next()
            done.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                runClient(client, seed: seed)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        defer {
            gate.stop()
            _ = done.wait(timeout: .now() + 60)
        }

        var kills = 0, startupKills = 0, broken = false
        let verbose = plan.kills <= 50
        for generation in 1...plan.kills {
            let before = stats.withLock { $0 }
            gate.release(generation)
            let delay = Int.random(in: 0..<plan.maxDelayMillis, using: &rng)
            usleep(UInt32(delay) * 1_000)
            guard daemon.process?.isRunning == true else {
                violation("kill \(generation): twofoldd had exited by itself:\n\(daemon.log.suffix(3000))")
                broken = true
                break
            }
            gate.markKilled(generation)
            daemon.kill()
            kills += 1
            guard gate.waitUntilParked(after: generation, timeoutSeconds: 30) else {
                violation("kill \(generation): clients \(gate.notParked(after: generation)) did not come back within 30 s of the kill (a hang)")
                broken = true
                break
            }
            let resolved = checkDisk(after: "kill \(generation) (\(delay) ms after ready)")
            var startupKill = ""
            if Int.random(in: 0..<plan.startupKillEvery, using: &rng) == 0 {
                // Killed again while it starts: at a random moment up to the median time to ready.
                let median = readyMillis.isEmpty ? 100 : readyMillis.sorted()[readyMillis.count / 2]
                let at = Int.random(in: 0...max(Int(median), 1), using: &rng)
                do {
                    try daemon.start(waitForReady: false)
                } catch {
                    violation("kill \(generation): twofoldd could not be started: \(error)")
                    broken = true
                    break
                }
                usleep(UInt32(at) * 1_000)
                daemon.kill()
                startupKills += 1
                startupKill = ", killed again \(at) ms into its start"
                _ = checkDisk(after: "kill \(generation) during the start")
            }
            let restart = Date()
            do {
                try daemon.start()
            } catch {
                violation("kill \(generation): twofoldd did not come back: \(error)")
                broken = true
                break
            }
            readyMillis.append(Date().timeIntervalSince(restart) * 1_000)
            let after = stats.withLock { $0 }
            if verbose || generation % 25 == 0 || !violations.withLock({ $0.isEmpty }) {
                say("kill \(generation)/\(plan.kills): \(delay) ms after ready, \(after.logins - before.logins) logins in that life, "
                      + "\(after.cut - before.cut) cut (\(resolved.used) right codes found used, \(resolved.unused) not)\(startupKill); "
                      + "ready again in \(Int(readyMillis.last!)) ms")
            }
            if violations.withLock({ $0.count }) > 100 { break }
        }

        if !broken {
            // A last life, not killed: the clients' checks after the restart, then some load; then the end.
            gate.release(plan.kills + 1)
            usleep(UInt32(plan.maxDelayMillis) * 1_000)
            gate.stop()
            if done.wait(timeout: .now() + 30) == .timedOut {
                violation("the clients did not stop within 30 s of the end (a hang)")
            }
            _ = checkDisk(after: "the last life (daemon running)")
            finalReplays(&rng)
            let status = daemon.stop()
            if status != 0 { violation("twofoldd exited \(status) at SIGTERM after the run:\n\(daemon.log.suffix(2000))") }
            _ = checkDisk(after: "the stop")
        }

        let elapsed = Date().timeIntervalSince(started)
        let finalStats = stats.withLock { $0 }
        let sorted = readyMillis.sorted()
        let p50 = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
        let summary = """
            kill test (\(backend.rawValue)): \(kills) kills under load (+\(startupKills) during a start) in \(Int(elapsed)) s, seed \(plan.seed)
            kill test (\(backend.rawValue)): \(finalStats)
            kill test (\(backend.rawValue)): time to ready after a kill: p50 \(Int(p50)) ms, p99 \(Int(p99)) ms, max \(Int(sorted.last ?? 0)) ms
            kill test (\(backend.rawValue)): violations \(violations.withLock { $0.count })
            """
        return KillReport(kills: kills, startupKills: startupKills, stats: finalStats, violations: violations.withLock { $0 }, summary: summary)
    }

    /// With every client parked (or stopped): the database read-only against the record. Lost right
    /// codes are settled by what is on disk. Returns how many were found used and not used.
    @discardableResult
    private func checkDisk(after moment: String) -> (used: Int, unused: Int) {
        var counters: [String: UInt64] = [:]
        var usedCodes: [String: Set<Int>] = [:]
        do {
            switch backend {
            case .sqlite:
                let rows = try ReadOnlySQLite.query(daemon.sqlitePath, [
                    "PRAGMA integrity_check",
                    "SELECT user, counter FROM factors WHERE kind = 'hotp'",
                    "SELECT user, idx FROM recovery_codes WHERE used_at IS NOT NULL",
                ])
                let integrity = rows[0].map { $0.compactMap { $0 }.joined(separator: " ") }
                if integrity != ["ok"] { violation("after \(moment): integrity_check: \(integrity.prefix(5).joined(separator: "; "))") }
                for row in rows[1] { if let user = row[0], let value = row[1].flatMap(UInt64.init) { counters[user] = value } }
                for row in rows[2] { if let user = row[0], let index = row[1].flatMap(Int.init) { usedCodes[user, default: []].insert(index) } }
            case .postgresql:
                guard let postgres else { throw HarnessError("no PostgreSQL") }
                let output = try postgres.cluster.psql("""
                    SELECT 'c', user_name, counter FROM factors WHERE kind = 'hotp'
                    UNION ALL SELECT 'r', user_name, idx FROM recovery_codes WHERE used_at IS NOT NULL
                    """, url: postgres.cluster.url(database: postgres.database))
                for line in output.split(separator: "\n") {
                    let fields = line.split(separator: "|").map(String.init)
                    guard fields.count == 3 else { continue }
                    if fields[0] == "c", let value = UInt64(fields[2]) { counters[fields[1]] = value }
                    if fields[0] == "r", let index = Int(fields[2]) { usedCodes[fields[1], default: []].insert(index) }
                }
            }
        } catch {
            violation("after \(moment): the database cannot be read: \(error)")
            return (0, 0)
        }

        var used = 0, unused = 0
        for user in users {
            guard let onDisk = counters[user.name] else {
                violation("after \(moment): \(user.name) has no HOTP factor on disk")
                continue
            }
            if let lost = user.lostCounter, lost == user.next, onDisk == lost + 1 {
                // The lost right code was used: it counts as a success (never again).
                user.successes.append((lost, user.code(lost)))
                user.next = onDisk
                used += 1
            } else if onDisk == user.next {
                if user.lostCounter != nil { unused += 1 }
            } else {
                let told = user.successes.last.map { "SUCCESS up to counter \($0.counter)" } ?? "no SUCCESS"
                violation("after \(moment): \(user.name)'s counter on disk is \(onDisk); the clients were told \(told), "
                          + "lost right code: \(user.lostCounter.map(String.init) ?? "none") — "
                          + (onDisk < user.next ? "a SUCCESS was forgotten" : "a code nobody got SUCCESS for was used"))
                user.next = max(onDisk, user.next)
            }
            user.lostCounter = nil

            let diskUsed = usedCodes[user.name] ?? []
            var expected = user.recoveryUsed
            if let lost = user.recoveryLost, diskUsed.contains(lost) {
                expected.insert(lost)
                user.recoveryUsed.insert(lost)
                stats.withLock { $0.lostRecoveryUsed += 1 }
            } else if user.recoveryLost != nil {
                stats.withLock { $0.lostRecoveryUnused += 1 }
            }
            user.recoveryLost = nil
            if diskUsed != expected {
                violation("after \(moment): \(user.name)'s used recovery codes on disk are \(diskUsed.sorted()), the record says \(expected.sorted())")
                user.recoveryUsed = diskUsed
            }
        }
        stats.withLock { $0.lostUsed += used; $0.lostUnused += unused }
        return (used, unused)
    }

    /// At the end: each user's 11 newest codes that got SUCCESS (those within the daemon's look-back,
    /// where only the stored counter refuses them) and a sample of the older ones, 64 at a time.
    private func finalReplays(_ rng: inout SeededGenerator) {
        var work: [(user: KillUser, counter: UInt64, code: String)] = []
        var older: [(user: KillUser, counter: UInt64, code: String)] = []
        for user in users {
            for (index, success) in user.successes.reversed().enumerated() {
                if index < 11 { work.append((user, success.counter, success.code)) } else { older.append((user, success.counter, success.code)) }
            }
        }
        older.shuffle(using: &rng)
        work += older.prefix(max(0, 5_000 - work.count))
        let all = work
        // One user's codes on one lane, newest first, so that its lock (100 refusals in a row) comes after them.
        let lanes = 64
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for item in all where item.user.index % lanes == lane {
                if item.user.windowCodes().contains(item.code) { continue }  // a collision: that code is right again
                do {
                    let outcome = try login(item.user.name, item.code)
                    if outcome.verdict == .success {
                        violation("at the end: \(item.user.name)'s code for counter \(item.counter), which got SUCCESS before, got SUCCESS again")
                    } else {
                        stats.withLock { $0.finalReplaysRefused += 1 }
                    }
                } catch {
                    violation("at the end: replaying \(item.user.name)'s counter \(item.counter): \(error)")
                }
            }
        }
    }

    // MARK: - A client

    private func login(_ user: String, _ answer: String) throws -> LoginDialog.Outcome {
        try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: user, service: "sshd", rhost: "127.0.0.1", tty: "ssh"),
                            timeoutSeconds: 10) { _, _ in answer }
    }

    private func runClient(_ client: Int, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let mine = Array(users[(client * KillPlan.usersPerClient)..<((client + 1) * KillPlan.usersPerClient)])
        var generation = 0
        while let current = gate.waitToRun(client, after: generation) {
            generation = current
            // After a restart: each user's newest code that got SUCCESS before the kill, again (unless
            // an earlier restart's check already saw it refused).
            var queue: [(KillUser, KillAttempt)] = mine.compactMap { user in
                guard let last = user.successes.last, last.counter != user.refusedAfterRestart, !user.windowCodes().contains(last.code) else { return nil }
                return (user, .restartReplay(last.counter, last.code))
            }
            while !gate.isStopped {
                let (user, attempt) = queue.isEmpty ? choose(mine, &rng) : queue.removeFirst()
                if !attemptLogin(user, attempt, generation: generation) { break }
            }
        }
    }

    private func choose(_ mine: [KillUser], _ rng: inout SeededGenerator) -> (KillUser, KillAttempt) {
        let user = mine[Int.random(in: 0..<mine.count, using: &rng)]
        let roll = user.failuresInARow >= 40 ? 0 : Int.random(in: 0..<100, using: &rng)
        switch roll {
        case 45..<65:
            return (user, .wrong(user.wrongCode(&rng)))
        case 65..<90:
            // One of the newest codes that got SUCCESS (within the daemon's look-back), unless it is a right code again.
            let recent = user.successes.suffix(10).filter { !user.windowCodes().contains($0.code) }
            if let pick = recent.randomElement(using: &rng) { return (user, .replay(pick.counter, pick.code)) }
        case 90..<94:
            if let index = user.unusedRecovery.randomElement(using: &rng) { return (user, .recovery(index)) }
        case 94..<100:
            if let index = user.recoveryUsed.sorted().randomElement(using: &rng) { return (user, .recoveryReplay(index)) }
        default:
            break
        }
        return (user, .right(user.next))
    }

    /// One login; false when the daemon was lost (the client parks).
    private func attemptLogin(_ user: KillUser, _ attempt: KillAttempt, generation: Int) -> Bool {
        let answer: String
        switch attempt {
        case .right(let counter): answer = user.code(counter)
        case .wrong(let code), .replay(_, let code), .restartReplay(_, let code): answer = code
        case .recovery(let index), .recoveryReplay(let index): answer = user.recoveryCodes[index]
        }
        let result = Result { try login(user.name, answer) }
        stats.withLock { $0.logins += 1 }
        switch result {
        case .success(let outcome):
            return judge(user, attempt, outcome)
        case .failure(let error):
            let killed = gate.wasKilled(generation)
            let kind = Self.errorKind(error)
            stats.withLock { $0.cut += 1; $0.errors[kind, default: 0] += 1 }
            if !killed {
                violation("\(user.name): \(attempt) got an error while the daemon was alive: \(error)")
            } else if kind == "timed out" || kind == "other" {
                violation("\(user.name): \(attempt) after the kill: not a clean error but \(error)")
            }
            lost(user, attempt)
            return false
        }
    }

    /// An attempt without a verdict: whether its code was used is settled by the database after the kill.
    private func lost(_ user: KillUser, _ attempt: KillAttempt) {
        user.failuresInARow += 1
        switch attempt {
        case .right(let counter): user.lostCounter = counter
        case .recovery(let index): user.recoveryLost = index
        default: break
        }
    }

    /// Judges a verdict; false when the attempt's fate is for the database to say (the client parks).
    private func judge(_ user: KillUser, _ attempt: KillAttempt, _ outcome: LoginDialog.Outcome) -> Bool {
        let verdict = outcome.verdict
        guard verdict == .success || verdict == .failure else {
            violation("\(user.name): \(attempt) got \(verdict.name) (\(outcome.reason ?? "")), neither SUCCESS nor FAILURE")
            lost(user, attempt)
            return false
        }
        switch attempt {
        case .right(let counter):
            if verdict == .success {
                user.successes.append((counter, user.code(counter)))
                user.next = counter + 1
                user.failuresInARow = 0
                stats.withLock { $0.successes += 1 }
            } else {
                violation("\(user.name): the right code for counter \(counter) was refused (\(outcome.reason ?? ""))")
                user.failuresInARow += 1
            }
        case .recovery(let index):
            if verdict == .success {
                user.recoveryUsed.insert(index)
                user.failuresInARow = 0
                stats.withLock { $0.recoverySuccesses += 1 }
            } else {
                violation("\(user.name): unused recovery code \(index) was refused (\(outcome.reason ?? ""))")
                user.failuresInARow += 1
            }
        case .wrong, .replay, .recoveryReplay, .restartReplay:
            if verdict == .success {
                violation("\(user.name): \(attempt) got SUCCESS")
                return true
            }
            user.failuresInARow += 1
            stats.withLock {
                switch attempt {
                case .wrong: $0.wrongRefused += 1
                case .replay: $0.replaysRefused += 1
                case .recoveryReplay: $0.recoveryReplaysRefused += 1
                default: $0.restartReplaysRefused += 1
                }
            }
            if case .restartReplay(let counter, _) = attempt { user.refusedAfterRestart = counter }
        }
        return true
    }

    static func errorKind(_ error: any Error) -> String {
        guard let client = error as? ClientError else { return "other" }
        switch client.kind {
        case .daemonUnreachable(_, let code, _): return code == ECONNREFUSED || code == ENOENT ? "refused" : "other"
        case .closedByDaemon: return "closed"
        case .system(_, let code, _): return code == ECONNRESET || code == EPIPE ? "reset" : "other"
        case .timedOut: return "timed out"
        default: return "other"
        }
    }
}
