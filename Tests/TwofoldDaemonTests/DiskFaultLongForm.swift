import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The long form of the disk faults (issue 17): `scripts/fault-disk.sh --seconds N` (or
/// `TWOFOLD_DISK_FAULT_SECONDS=N swift test --filter DiskFaultLongForm`). One daemon, its database
/// on stallfs whose backing directory is a tmpfs of its own, and clients logging in all the time
/// (right codes, one per user and time step, and wrong ones) while the disk is filled, stalled, or
/// both, again and again for N seconds, with healthy spells between. It prints its figures and
/// fails on: a SUCCESS for an answer sent during a stall and answered before its release; a
/// dialog without a verdict (the client gave up after 20 s); a write that fails once the fault is
/// undone; a SUCCESS that the database does not hold afterwards (the users' last steps, the
/// audit's success records = SUCCESS verdicts + codes accepted after their client's deadline); a
/// failed integrity_check; a daemon that crashed or restarted.
@Suite("faults, long form: the database's disk filled and stalled again and again under logins")
struct DiskFaultLongForm {
    static let seconds: Int? = ProcessInfo.processInfo.environment["TWOFOLD_DISK_FAULT_SECONDS"].flatMap(Int.init)

    /// What one dialog came to.
    struct Attempt: Sendable {
        var user: String
        var step: Int64?          // the right code's time step; nil for a wrong code
        var startedAt: UInt64     // uptime ns when AUTH_START went out
        var promptAt: UInt64      // when the prompt came (0: none)
        var answeredAt: UInt64    // when the ANSWER went out (0: no prompt)
        var verdictAt: UInt64
        var verdict: VerdictCode?
        var error: String?
    }

    /// Everything the clients and the controller record, under one lock.
    final class Record: @unchecked Sendable {
        private let lock = NSLock()
        private var attempts: [Attempt] = []
        private var stop = false

        func add(_ attempt: Attempt) { lock.withLock { attempts.append(attempt) } }
        var all: [Attempt] { lock.withLock { attempts } }
        var stopped: Bool { lock.withLock { stop } }
        func finish() { lock.withLock { stop = true } }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// One login dialog: AUTH_START (the client waits `waitMillis` for each message), the prompt,
    /// the answer, the verdict.
    static func attempt(_ socket: String, user: String, code: String, step: Int64?, waitMillis: UInt32) -> Attempt {
        var result = Attempt(user: user, step: step, startedAt: now(), promptAt: 0, answeredAt: 0, verdictAt: 0, verdict: nil, error: nil)
        do {
            let connection = try TwofoldConnection(socketPath: socket, timeoutSeconds: 20)
            defer { connection.close() }
            try connection.send(.authStart(AuthStart(user: user, service: "sshd", rhost: "192.0.2.1", tty: "ssh", deadlineMillis: waitMillis)))
            var message = try connection.receive()
            while true {
                switch message {
                case .info, .errorMessage:
                    message = try connection.receive()
                    continue
                case .promptEchoOff:
                    result.promptAt = now()
                    result.answeredAt = now()
                    try connection.send(.answer(code))
                    message = try connection.receive()
                    continue
                case .verdict(let verdict, _):
                    result.verdictAt = now()
                    result.verdict = verdict
                default:
                    result.error = "unexpected \(message)"
                }
                break
            }
        } catch {
            result.verdictAt = now()
            result.error = "\(error)"
        }
        return result
    }

    @Test("fill, stall, both, heal, for TWOFOLD_DISK_FAULT_SECONDS under steady logins: never an early SUCCESS, always a verdict, nothing committed lost",
          .enabled(if: DiskFaultLongForm.seconds != nil, "the long form: scripts/fault-disk.sh --seconds N"))
    func longForm() throws {
        let seconds = try #require(Self.seconds)
        let fs = try SmallFileSystem(.tmpfs, kibibytes: 128 * 1024)
        defer { fs.unmount() }
        let backing = fs.mountPoint + "/db"
        guard mkdir(backing, 0o755) == 0 else { throw HarnessError("mkdir \(backing)") }
        let stall = try StallFS(backing: backing)
        defer { stall.unmount() }
        let database = stall.mountPoint + "/twofold.sqlite"
        let daemon = try DaemonProcess(extraConfig: "database = \(database)\nmax_failures = 100")
        defer { try? stall.release(); daemon.kill() }
        let pid = try #require(daemon.process?.pid)

        let userCount = 240, clientCount = 8
        let waitMillis: UInt32 = 2000
        let users = try (0..<userCount).map { try daemon.provision(String(format: "lf%03d", $0)) }
        _ = try daemon.provision("probe")
        let record = Record()
        let group = DispatchGroup()
        for client in 0..<clientCount {
            // Each user's right code is due at its own moment of the 30 s step, so right codes come
            // all the time (not in a burst at each step's start) and every stall meets some.
            let mine = users.enumerated().filter { $0.offset % clientCount == client }
                .map { (account: $0.element, due: Double($0.offset) * 28 / Double(userCount)) }
            let socket = daemon.socketPath
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                var lastStep: [String: Int64] = [:]
                var wrongThisStep: [String: Int] = [:]
                while !record.stopped {
                    var rightCodes = 0
                    for (account, due) in mine where !record.stopped {
                        let time = Date().timeIntervalSince1970
                        let step = Int64(time) / 30
                        if lastStep[account.user, default: -1] < step && time - Double(step * 30) >= due {
                            lastStep[account.user] = step
                            wrongThisStep[account.user] = 0
                            rightCodes += 1
                            let code = account.app.code(at: Date(timeIntervalSince1970: TimeInterval(step * 30)))
                            record.add(Self.attempt(socket, user: account.user, code: code, step: step, waitMillis: waitMillis))
                        } else if wrongThisStep[account.user, default: 0] < 2 && Int.random(in: 0..<4) == 0 {
                            // A few wrong codes per user and step (a success resets the count; the
                            // lock is at 100).
                            wrongThisStep[account.user, default: 0] += 1
                            record.add(Self.attempt(socket, user: account.user, code: account.wrongCode(), step: nil, waitMillis: waitMillis))
                        }
                    }
                    // Pacing: a pass with no right code left in this time step rests a little.
                    if rightCodes == 0 { Thread.sleep(forTimeInterval: 0.05) }
                }
            }
        }

        enum Fault: String, CaseIterable { case full, stall, both }
        var cycles: [Fault: Int] = [:]
        var stallWindows: [(start: UInt64, end: UInt64)] = []
        var recoveryMillis: [Int] = []
        var problems: [String] = []
        var integrityChecks = 0
        var filledBytes: [Int] = []
        let start = Date()
        var cycle = 0
        while Date().timeIntervalSince(start) < Double(seconds) {
            let fault = Fault.allCases[cycle % 3]
            cycle += 1
            cycles[fault, default: 0] += 1
            var windowStart: UInt64?
            if fault != .stall { filledBytes.append(try fs.fill()) }
            if fault != .full {
                try stall.stall()
                windowStart = Self.now()
            }
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...4))   // the fault lasts this long
            if let windowStart {
                stallWindows.append((windowStart, Self.now()))
                try stall.release()
            }
            if fault != .stall { try fs.free() }
            // The fault undone: a write goes through at once (behind whatever the stall held).
            let asked = Date()
            let answer = try daemon.control(.unlock(user: "probe"))
            recoveryMillis.append(Int(Date().timeIntervalSince(asked) * 1000))
            if answer != .ok { problems.append("cycle \(cycle) (\(fault)): a write after the fault was undone: \(answer)") }
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...2))   // a healthy spell
            if cycle % 10 == 0 {
                let check = try SQLiteShell.integrityCheck(database)
                integrityChecks += 1
                if check != "ok" { problems.append("cycle \(cycle): integrity_check: \(check)") }
            }
        }
        record.finish()
        group.wait()

        #expect(daemon.process?.isRunning == true && daemon.process?.pid == pid, "the daemon crashed or restarted")
        #expect(daemon.stop() == 0)
        let attempts = record.all
        // A SUCCESS for an answer sent while syncs were held, received before they were released:
        // its commit cannot have been durable.
        let early = attempts.filter { a in
            a.verdict == .success && stallWindows.contains { a.answeredAt > $0.start && a.verdictAt < $0.end }
        }
        let noVerdict = attempts.filter { $0.verdict == nil }
        let successes = attempts.filter { $0.verdict == .success }
        // What the database holds: every user's last step covers its SUCCESS verdicts, and the
        // success records are the SUCCESS verdicts plus the codes accepted after their client's deadline.
        let stepsRows = try SQLiteShell.run(backing + "/twofold.sqlite", "SELECT user, last_step FROM factors")
        var stored: [String: Int64] = [:]
        for line in stepsRows.split(separator: "\n") {
            let cols = line.split(separator: "|", omittingEmptySubsequences: false)
            if cols.count == 2, let step = Int64(cols[1]) { stored[String(cols[0])] = step }
        }
        var notDurable: [String] = []
        for success in successes where stored[success.user, default: -1] < (success.step ?? 0) {
            notDurable.append("\(success.user)@\(success.step ?? -1)")
        }
        let successRecords = Int(try SQLiteShell.run(backing + "/twofold.sqlite",
                                                     "SELECT count(*) FROM audit WHERE action = 'verify' AND outcome = 'success' AND user LIKE 'lf%'")) ?? -1
        let lateAccepts = Int(try SQLiteShell.run(backing + "/twofold.sqlite",
                                                  "SELECT count(*) FROM audit WHERE action = 'verify' AND outcome = 'abandoned' AND reason LIKE 'code accepted after%' AND user LIKE 'lf%'")) ?? -1
        let finalCheck = try SQLiteShell.integrityCheck(backing + "/twofold.sqlite")

        // Figures.
        var byVerdict: [String: Int] = [:]
        for a in attempts { byVerdict[a.verdict?.name ?? "none", default: 0] += 1 }
        let latencies = attempts.filter { $0.answeredAt > 0 && $0.verdict != nil }.map { Int(($0.verdictAt - $0.answeredAt) / 1_000_000) }.sorted()
        let stalledLatencies = attempts.filter { a in a.answeredAt > 0 && a.verdict != nil && stallWindows.contains { a.answeredAt > $0.start && a.answeredAt < $0.end } }
            .map { Int(($0.verdictAt - $0.answeredAt) / 1_000_000) }.sorted()
        let startedInStall = attempts.filter { a in stallWindows.contains { a.startedAt > $0.start && a.startedAt < $0.end } }
        let promptLatencies = startedInStall.filter { $0.promptAt > 0 }.map { Int(($0.promptAt - $0.startedAt) / 1_000_000) }.sorted()
        func pct(_ values: [Int], _ p: Double) -> Int { values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * p))] }
        print("""
            disk faults, long form: \(seconds) s, \(cycle) cycles (\(cycles.map { "\($0.key.rawValue) \($0.value)" }.sorted().joined(separator: ", "))), \(clientCount) clients, \(userCount) users, client wait \(waitMillis) ms
              dialogs \(attempts.count): \(byVerdict.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
              answer→verdict ms: p50 \(pct(latencies, 0.5)), p99 \(pct(latencies, 0.99)), max \(latencies.last ?? 0); answered during a stall: p50 \(pct(stalledLatencies, 0.5)), max \(stalledLatencies.last ?? 0) (\(stalledLatencies.count)); over the client's wait: \(latencies.filter { $0 > Int(waitMillis) }.count)
              dialogs started during a stall \(startedInStall.count): AUTH_START→prompt ms p50 \(pct(promptLatencies, 0.5)), max \(promptLatencies.last ?? 0)
              SUCCESS verdicts \(successes.count); success records \(successRecords) = SUCCESS \(successes.count) + accepted after the deadline \(lateAccepts)
              filler bytes per fill: min \(filledBytes.min() ?? 0), max \(filledBytes.max() ?? 0); first write after the fault: p50 \(pct(recoveryMillis.sorted(), 0.5)) ms, max \(recoveryMillis.max() ?? 0) ms
              integrity_check: \(integrityChecks) during the run, \(finalCheck) at the end
            """)
        #expect(problems.isEmpty, "\(problems)")
        #expect(early.isEmpty, "SUCCESS before the commit could be durable: \(early.prefix(5))")
        #expect(noVerdict.isEmpty, "dialogs without a verdict: \(noVerdict.count), e.g. \(noVerdict.prefix(3).map { $0.error ?? "" })")
        #expect(notDurable.isEmpty, "SUCCESS verdicts the database does not hold: \(notDurable.prefix(5))")
        #expect(successRecords == successes.count + lateAccepts)
        #expect(finalCheck == "ok")
        #expect(successes.count > 0 && cycle >= 3, "the run did something")
    }
}
