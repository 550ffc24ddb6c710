import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 17, clients that misbehave at scale: a thousand connections from local users that stop
/// mid-frame, trickle a byte at a time, half-close, or send valid frames out of order, against a
/// real daemon over its socket, while root's logins (sshd's, through the module) go on with right
/// codes. The noise comes from `benchmarks/noisegen` (C, built here as the PAM module is) run as
/// the test users; `benchmarks/noise.sh` is the long form (minutes, more connections, its figures).
@Suite("clients that misbehave at scale")
struct NoisyClientsTests {
    /// A connection lasts at most this long, and one silent for `idle` is closed: low, so that the
    /// noise meets every timeout within seconds.
    static let idle = 1, total = 3

    @Test("1,000 misbehaving connections from two local users: every root login succeeds, each is closed as documented, RSS bounded, descriptors released")
    func thousandMisbehavingConnections() async throws {
        let noisegen = try NoiseGenerator.build()
        // max_connections and reserved_root_connections at their defaults (512, 128). The per-uid cap
        // is raised from 16 to 512 so that two users can take the whole non-root share (384), as 24
        // users at the default cap could: the limit under test is the share, and what is left of
        // 1,000 is refused. The noise users' own account is enrolled, so their AUTH_STARTs reach a
        // prompt and their dialogs are counted.
        let daemon = try DaemonProcess(extraConfig: """
        idle_timeout = \(Self.idle)
        connection_timeout = \(Self.total)
        max_connections_per_uid = 512
        """)
        let pid = try #require(daemon.process?.pid)
        let noisy = [try TestUser.user, try TestUser.other]
        let noisyAccounts = try noisy.map { try daemon.provision($0.name) }
        let users = try daemon.provisionMany(prefix: "real", count: 2_000).sorted { $0.key < $1.key }

        // Quiet: 200 logins by 2 clients (warms the store's pages and the daemon's pools).
        let quiet = try await offPool { RootLogins.run(daemon, users: users[0..<200], clients: 2) { _ in false } }
        let descriptors = ProcessProbe.descriptors(pid)
        let rssBefore = ProcessProbe.rssKiB(pid)

        // Noisy, twice: 500 connections from each user, replaced as the daemon closes them, while 2
        // root clients log in for at least 5 s (a connection_timeout and more) and at least 30 times;
        // then the noise stops and the daemon closes what is left.
        var noisyLogins = RootLogins()
        var reports: [NoiseGenerator.Report] = []
        var rounds: [(seconds: Double, peak: Int, after: Int, descriptors: Int)] = []
        for round in 0..<2 {
            let generators = try noisy.map { try NoiseGenerator(noisegen, as: $0, socket: daemon.socketPath, connections: 500) }
            for generator in generators { try generator.waitUntilReady() }
            let started = Date()
            let peak = Peak(rssBefore)
            let logins = try await offPool {
                RootLogins.run(daemon, users: users[(200 + round * 900)..<(1_100 + round * 900)], clients: 2) { done in
                    if done % 25 == 0 { peak.note(ProcessProbe.rssKiB(pid)) }
                    return done >= 30 && Date().timeIntervalSince(started) >= 5
                }
            }
            let seconds = Date().timeIntervalSince(started)
            peak.note(ProcessProbe.rssKiB(pid))
            reports += try await offPool { try generators.map { try $0.finish() } }
            noisyLogins.latencies += logins.latencies
            noisyLogins.failures += logins.failures
            // Descriptors: back to what the daemon held before the noise once it has closed everything.
            let released = Date().addingTimeInterval(20)
            var after = ProcessProbe.descriptors(pid)
            while after > descriptors, Date() < released {
                _ = poll(nil, 0, 50)
                after = ProcessProbe.descriptors(pid)
            }
            rounds.append((seconds, peak.max, ProcessProbe.rssKiB(pid), after))
        }
        #expect(daemon.process?.isRunning == true, "the daemon died under the noise:\n\(daemon.log.suffix(3000))")

        // Every root login succeeded, with the noise as without it.
        #expect(quiet.failures.isEmpty, "quiet: \(quiet.failures.prefix(5))")
        #expect(noisyLogins.failures.isEmpty, "under noise: \(noisyLogins.failures.prefix(5))")
        #expect(noisyLogins.latencies.count >= 30)

        // The noise met the limits: part of it was refused, and only with the non-root reasons (the
        // total of 512 was never reached: root's 128 stayed free).
        let all = reports.flatMap(\.outcomes)
        let refused = all.filter { $0.outcome.hasPrefix("refused-") }
        #expect(refused.contains { $0.outcome == "refused-reserved" }, "\(NoiseGenerator.Report.table(reports))")
        #expect(!refused.contains { $0.outcome == "refused-total" }, "a non-root flood reached the total:\n\(NoiseGenerator.Report.table(reports))")
        // Each kind was closed by the daemon as documented.
        for report in reports {
            #expect(report.stillOpen == 0 && report.connectErrors == 0, "\(report.summary)")
            #expect(report.opened >= 500)
        }
        // A silent connection or a half-sent frame: closed without a word, and not before idle_timeout
        // (noisegen times a connection from before its connect(); 10 ms for the clocks' granularity).
        let notBeforeIdle = Self.idle * 1000 - 10
        for kind in ["silent", "midframe", "bigframe"] {
            let closed = all.filter { $0.kind == kind && $0.outcome == "eof" }
            #expect(!closed.isEmpty && closed.allSatisfy { $0.minMillis >= notBeforeIdle }, "\(kind): \(closed)\n\(NoiseGenerator.Report.table(reports))")
            #expect(all.filter { $0.kind == kind }.allSatisfy { $0.outcome == "eof" || $0.outcome.hasPrefix("refused-") },
                    "\(NoiseGenerator.Report.table(reports))")
        }
        // A trickle is never idle: held until connection_timeout (its bytes keep resetting the idle
        // timer), then closed; none outlives it (still_open above: nothing else would end them).
        let trickles = all.filter { $0.kind == "trickle" && $0.outcome == "eof" }
        #expect(!trickles.isEmpty && trickles.allSatisfy { $0.minMillis >= notBeforeIdle }, "\(trickles)")
        #expect(trickles.contains { $0.maxMillis >= Self.total * 1000 - 10 }, "\(trickles)")
        // Frames out of order: a protocol error (or a refusal), never a verdict that lets anyone in.
        let disorder = all.filter { $0.kind == "outoforder" }
        #expect(disorder.contains { $0.outcome == "protocol-error" }, "\(disorder)")
        #expect(!all.contains { $0.outcome == "verdict-SUCCESS" || $0.outcome == "verdict-IGNORE" }, "\(NoiseGenerator.Report.table(reports))")

        // Descriptors released after each round; memory bounded: what 512 connections may buffer (a
        // half-sent frame of 64 KiB each) and their state, 96 MiB over the resident size before the
        // noise; and no growth from one round to the next beyond 16 MiB (the second round reuses what
        // the first left: a leak of 1 KiB a connection over its ~10,000 connections would show).
        for (round, figures) in rounds.enumerated() {
            #expect(figures.descriptors <= descriptors, "round \(round + 1): \(descriptors) descriptors before the noise, \(figures.descriptors) after")
            #expect(figures.peak - rssBefore < 96 * 1024, "round \(round + 1): RSS \(rssBefore) KiB before the noise, \(figures.peak) KiB at its peak")
        }
        #expect(rounds[1].after - rounds[0].after < 16 * 1024, "RSS after the first round \(rounds[0].after) KiB, after the second \(rounds[1].after) KiB")

        // No dialog slot was left behind by the noise's own dialogs (max_dialogs_per_user = 4: four
        // leaked slots would refuse every later dialog for the account): each logs in from root.
        for account in noisyAccounts {
            let outcome = try daemon.login(account.user, answer: account.code())
            #expect(outcome.verdict == .success, "\(account.user): \(outcome.verdict) \(outcome.reason ?? "")")
        }

        print("""
        noise: 1,000 connections from \(noisy.map(\.name).joined(separator: " and ")), two rounds of \
        \(rounds.map { String(format: "%.1f", $0.seconds) }.joined(separator: " and ")) s, \(reports.map(\.opened).reduce(0, +)) connections opened in all
        root logins without noise: \(quiet.figures)
        root logins with noise:    \(noisyLogins.figures)
        daemon RSS \(rssBefore / 1024) MiB before the noise; peak and after each round \
        \(rounds.map { "\($0.peak / 1024)/\($0.after / 1024)" }.joined(separator: ", ")) MiB; descriptors \(descriptors) before, \
        \(rounds.map { String($0.descriptors) }.joined(separator: ", ")) after each round
        \(NoiseGenerator.Report.table(reports))
        """)
    }
}

extension NoisyClientsTests {
    @Test("a local user's dialogs that close right after AUTH_START leave no dialog slot behind (the account still logs in)")
    func closedDuringTheAccountLookup() throws {
        let daemon = try DaemonProcess()
        let me = try TestUser.user
        let account = try daemon.provision(me.name)
        // A non-root peer's AUTH_START waits for the account lookup on the thread pool; these peers
        // are gone before it ends. Each used to take one of the account's 4 dialog slots for good.
        let start = try FrameCodec.encode(.authStart(AuthStart(user: me.name, service: "xscreensaver")))
        let (status, output) = try run(me.setpriv + ["/usr/bin/python3", "-c", """
        import socket, sys
        frame = bytes.fromhex(sys.argv[2])
        for _ in range(12):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(sys.argv[1])
            s.sendall(frame)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
            s.close()
        print('done')
        """, daemon.socketPath, start.map { String(format: "%02x", $0) }.joined()])
        #expect(status == 0 && output.contains("done"), "\(output)")
        let outcome = try daemon.login(account.user, answer: account.code())
        #expect(outcome.verdict == .success, "\(outcome.verdict) \(outcome.reason ?? "")")
    }
}

/// Root's logins (what sshd's module does) over a slice of provisioned users, on `clients` threads,
/// each user once, until the users run out or `stop(logins so far)` says so.
struct RootLogins: Sendable {
    var latencies: [Double] = []
    var failures: [String] = []

    typealias Users = ArraySlice<(key: String, value: TestAuthenticator)>

    static func run(_ daemon: DaemonProcess, users: Users, clients: Int, stop: @escaping @Sendable (Int) -> Bool) -> RootLogins {
        let state = Shared(users)
        let group = DispatchGroup()
        for _ in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                while let (user, app) = state.take() {
                    let began = DispatchTime.now().uptimeNanoseconds
                    let outcome = Result {
                        try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: user, service: "sshd", rhost: "127.0.0.1", tty: "ssh"),
                                            timeoutSeconds: 10) { _, _ in app.code() }
                    }
                    let millis = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6
                    switch outcome {
                    case .success(let o) where o.verdict == .success: state.finished(latency: millis, stop: stop)
                    case .success(let o): state.finished(failure: "\(user): \(o.verdict) \(o.reason ?? "")", stop: stop)
                    case .failure(let error): state.finished(failure: "\(user): \(error)", stop: stop)
                    }
                }
            }.start()
        }
        group.wait()
        return state.result
    }

    /// The users still to log in and the results so far, shared by the clients.
    private final class Shared: @unchecked Sendable {
        private let lock = NSLock()
        private let users: Users
        private var next: Int
        private var stopped = false
        private var done = RootLogins()

        init(_ users: Users) {
            self.users = users
            next = users.startIndex
        }

        func take() -> (key: String, value: TestAuthenticator)? {
            lock.withLock {
                guard !stopped, next < users.endIndex else { return nil }
                defer { next += 1 }
                return users[next]
            }
        }

        func finished(latency: Double? = nil, failure: String? = nil, stop: (Int) -> Bool) {
            lock.withLock {
                if let latency { done.latencies.append(latency) }
                if let failure { done.failures.append(failure) }
                if stop(done.latencies.count + done.failures.count) { stopped = true }
            }
        }

        var result: RootLogins { lock.withLock { done } }
    }

    /// "N logins, p50 … ms, p99 … ms, max … ms".
    var figures: String {
        let sorted = latencies.sorted()
        func pct(_ p: Double) -> String {
            guard !sorted.isEmpty else { return "-" }
            return String(format: "%.2f", sorted[min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))])
        }
        return "\(sorted.count) logins, p50 \(pct(50)) ms, p99 \(pct(99)) ms, max \(pct(100)) ms"
    }
}

/// The largest of the values it was given (RSS samples from the login threads).
final class Peak: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ value: Int) { self.value = value }
    func note(_ sample: Int) { lock.withLock { value = Swift.max(value, sample) } }
    var max: Int { lock.withLock { value } }
}

/// What /proc says about a process.
enum ProcessProbe {
    static func descriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func rssKiB(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }
}

/// `benchmarks/noisegen` running as a test user: it opens its connections, says NOISE-READY, keeps
/// them coming until its standard input closes, then waits for the daemon to close what is left and
/// reports each kind's outcomes.
final class NoiseGenerator: @unchecked Sendable {
    struct Outcome: CustomStringConvertible {
        var kind: String
        var outcome: String
        var count: Int
        var minMillis: Int
        var medianMillis: Int
        var maxMillis: Int
        var description: String { "\(kind) \(outcome) ×\(count) (\(minMillis)/\(medianMillis)/\(maxMillis) ms)" }
    }

    struct Report {
        var outcomes: [Outcome] = []
        var summary = ""
        var opened = 0
        var stillOpen = -1
        var connectErrors = -1

        static func table(_ reports: [Report]) -> String {
            (reports.map(\.summary) + reports.flatMap(\.outcomes).map {
                "  \($0.kind.padding(toLength: 11, withPad: " ", startingAt: 0)) \($0.outcome.padding(toLength: 17, withPad: " ", startingAt: 0)) "
                    + "\(String($0.count).leftPadded(6)) closed after min/p50/max \($0.minMillis)/\($0.medianMillis)/\($0.maxMillis) ms"
            }).joined(separator: "\n")
        }
    }

    private let process: ChildProcess
    private var stdinWrite: Int32
    private let stdoutRead: Int32
    private var pending: [UInt8] = []
    private var lines: [String] = []

    /// Builds noisegen (make -C benchmarks, under a lock: tests run in parallel) and copies it where
    /// the test users can run it.
    static func build() throws -> String {
        let (status, output) = try ChildProcess.run(["/usr/bin/flock", "/tmp/twofold-bench-build.lock", "/usr/bin/make", "-s", "-C",
                                                     TestPaths.root + "/benchmarks", "out/bin/noisegen"])
        guard status == 0 else { throw HarnessError("make -C benchmarks out/bin/noisegen failed (\(status)):\n\(output)") }
        let copy = try makeTemporaryDirectory("ng") + "/noisegen"
        try FileManager.default.copyItem(atPath: TestPaths.root + "/benchmarks/out/bin/noisegen", toPath: copy)
        chmod(copy, 0o755)
        return copy
    }

    init(_ binary: String, as account: TestUser, socket: String, connections: Int, arguments: [String] = []) throws {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw HarnessError("pipe failed") }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(toChild[0]); close(fromChild[1]) }
        process = try ChildProcess(account.setpriv + [binary, "-s", socket, "-n", String(connections), "-W", "20", "--label", account.name] + arguments,
                                   fds: [0: toChild[0], 1: fromChild[1]])
        stdinWrite = toChild[1]
        stdoutRead = fromChild[0]
    }

    deinit {
        if stdinWrite >= 0 { close(stdinWrite) }
        process.signal(SIGKILL)
        process.wait()
        close(stdoutRead)
    }

    /// The next line of its output (nil at EOF or after `timeout` seconds of silence).
    private func nextLine(timeout: Int32) -> String? {
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                defer { pending.removeSubrange(...newline) }
                return String(decoding: pending[..<newline], as: UTF8.self)
            }
            var pfd = pollfd(fd: stdoutRead, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, timeout * 1000) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(stdoutRead, &buffer, buffer.count)
            guard n > 0 else { return nil }
            pending += buffer[0..<n]
        }
    }

    func waitUntilReady() throws {
        guard let line = nextLine(timeout: 60), line.hasPrefix("NOISE-READY") else { throw HarnessError("noisegen did not start") }
    }

    /// Stops the noise and waits for its report (the daemon closes what is left within its timeouts).
    func finish() throws -> Report {
        close(stdinWrite)
        stdinWrite = -1
        var report = Report()
        while let line = nextLine(timeout: 60) {
            let fields = Dictionary(line.split(separator: " ").dropFirst().compactMap { pair -> (String, String)? in
                guard let eq = pair.firstIndex(of: "=") else { return nil }
                return (String(pair[..<eq]), String(pair[pair.index(after: eq)...]))
            }, uniquingKeysWith: { a, _ in a })
            if line.hasPrefix("NOISE ") {
                report.outcomes.append(Outcome(kind: fields["kind"] ?? "", outcome: fields["outcome"] ?? "", count: Int(fields["count"] ?? "") ?? 0,
                                               minMillis: Int(fields["min_ms"] ?? "") ?? -1, medianMillis: Int(fields["p50_ms"] ?? "") ?? -1,
                                               maxMillis: Int(fields["max_ms"] ?? "") ?? -1))
            } else if line.hasPrefix("NOISE-SUMMARY") {
                report.summary = line
                report.opened = Int(fields["opened"] ?? "") ?? 0
                report.stillOpen = Int(fields["still_open"] ?? "") ?? -1
                report.connectErrors = Int(fields["connect_errors"] ?? "") ?? -1
            }
        }
        guard process.wait() == 0, !report.summary.isEmpty else { throw HarnessError("noisegen failed: \(report)") }
        return report
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
