#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import TwofoldCore
import TwofoldProtocol
import TwofoldSystemd

/// The delivery service: accepts connections on its Unix socket (on the calling thread), refuses
/// peers that are not the daemon, and serves each other connection on a thread of its own: one
/// request frame read within `readDeadlineMillis`, checked, its channel's command run, one response
/// frame written, closed. `stop()` (SIGTERM) ends the accepting; `run()` returns once the requests
/// in progress are answered (their commands finish, or reach their time limit).
public final class DeliveryServer: Sendable {
    public static let readDeadlineMillis = 2_000

    private let configuration: DeliveryConfiguration
    private let environment: [String: String]
    private let log: DeliveryLog
    private let authorization: PeerAuthorization
    private let onReady: @Sendable (String) -> Void

    private struct Counts {
        /// Connections being served (read, run, answered).
        var connections = 0
        /// Commands running.
        var running = 0
    }
    private let counts = Mutex(Counts())
    private let inFlight = DispatchGroup()
    private let refusedPeers = Mutex(RefusalWindow())
    /// The self-pipe that wakes the accepting loop for `stop()`.
    private let wake: (read: Int32, write: Int32)

    /// `environment` is the service's (NOTIFY_SOCKET, LISTEN_FDS, CREDENTIALS_DIRECTORY); commands
    /// get none of it but CREDENTIALS_DIRECTORY.
    public init(configuration: DeliveryConfiguration, environment: [String: String], log: DeliveryLog = DeliveryLog(),
                onReady: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.configuration = configuration
        self.environment = environment
        self.log = log
        self.authorization = PeerAuthorization(configuration)
        self.onReady = onReady
        var fds: [Int32] = [-1, -1]
        guard cPipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else {
            throw DeliveryConfigurationError("pipe: \(String(cString: strerror(errno)))")
        }
        wake = (fds[0], fds[1])
    }

    deinit {
        close(wake.read)
        close(wake.write)
    }

    /// Makes `run()` stop accepting and return once the requests in progress are answered.
    /// Safe to call from any thread, more than once.
    public func stop() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    /// Listens, sends READY=1, serves until `stop()`, then waits for the requests in progress.
    public func run() throws {
        let (listener, bound) = try UnixSocket.listen(path: configuration.socketPath, environment: environment)
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        let place = bound ?? "systemd socket (fd \(listener))"
        log.log(.notice, "listening", [("socket", place), ("max_concurrent", "\(configuration.maxConcurrent)"),
                                       ("email", configuration.emailCommand == nil ? "unconfigured" : "configured"),
                                       ("sms", configuration.smsCommand == nil ? "unconfigured" : "configured")])
        for problem in configuration.problems { log.log(.warning, "a command cannot run", [("problem", problem)]) }
        SystemdNotify.send("READY=1\nSTATUS=listening on \(place)\nMAINPID=\(getpid())", environment: environment)
        onReady(place)

        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        var backoff: Int32 = -1
        accepting: while true {
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, backoff)
            backoff = -1
            if ready < 0 && errno != EINTR { throw UnixSocket.Failure("poll: \(String(cString: strerror(errno)))") }
            if fds[1].revents != 0 { break accepting }
            guard fds[0].revents != 0 else { continue }
            let fd = cAccept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    log.log(.warning, "cannot accept a connection", [("error", String(cString: strerror(errno)))])
                    backoff = 100  // the queue stays full until a descriptor is free: do not spin
                }
                continue
            }
            admit(fd)
        }

        SystemdNotify.send("STOPPING=1", environment: environment)
        close(listener)
        if let bound { unlink(bound) }
        let (connections, running) = counts.withLock { ($0.connections, $0.running) }
        log.log(.notice, "shutting down: no new connections", [("connections", "\(connections)"), ("running", "\(running)")])
        inFlight.wait()
        log.log(.notice, "stopped")
    }

    // MARK: - Connections

    /// On the accepting thread: the peer's uid is checked before anything is read, and the number
    /// of connections bounded, so neither a stranger nor a flood gets a thread.
    private func admit(_ fd: Int32) {
        guard let uid = UnixSocket.peerUID(fd), authorization.allows(uid: uid) else {
            noteRefusedPeer()
            close(fd)
            return
        }
        let admitted = counts.withLock { counts -> Bool in
            guard counts.connections < configuration.maxConnections else { return false }
            counts.connections += 1
            return true
        }
        guard admitted else {
            // Answered at once, without reading the request: the daemon's login must not wait.
            UnixSocket.setSendTimeout(fd, milliseconds: 100)
            respond(fd, DeliveryResponse(outcome: "failed", detail: "busy"))
            close(fd)
            log.log(.warning, "request not read: too many connections", [("outcome", "failed"), ("detail", "busy")])
            return
        }
        inFlight.enter()
        Thread.detachNewThread { [self] in
            serve(fd)
            close(fd)
            counts.withLock { $0.connections -= 1 }
            inFlight.leave()
        }
    }

    private func serve(_ fd: Int32) {
        UnixSocket.setSendTimeout(fd, milliseconds: Self.readDeadlineMillis)
        let started = CommandRunner.monotonicMillis()
        let refused = { (detail: String) in
            self.log.log(.notice, "request refused", [("outcome", "refused"), ("detail", detail)])
            self.respond(fd, DeliveryResponse(outcome: "refused", detail: detail))
        }
        switch UnixSocket.readFrame(fd, maxLength: DeliveryWire.maxFrame, deadline: started + Self.readDeadlineMillis) {
        case .frame(let json):
            switch RequestCheck.request(from: json) {
            case .failure(let refusal): refused(refusal.detail)
            case .success(let request): respond(fd, deliver(request))
            }
        case .tooLarge(let length):
            refused("the frame announces \(length) bytes; at most \(DeliveryWire.maxFrame)")
        case .timedOut:
            refused("no whole request within \(Self.readDeadlineMillis) ms")
        case .truncated(let received):
            // Nothing at all: a probe that the service takes connections (twofoldctl doctor).
            if received > 0 { log.log(.notice, "connection closed before a whole request") }
        case .failed(let reason):
            log.log(.warning, "cannot read a request", [("error", reason)])
        }
    }

    private func respond(_ fd: Int32, _ response: DeliveryResponse) {
        guard let frame = try? DeliveryWire.frame(response) else { return }
        UnixSocket.writeAll(fd, frame)
    }

    // MARK: - Delivery

    /// Runs the channel's command for a checked request; logs one line.
    func deliver(_ request: DeliveryRequest) -> DeliveryResponse {
        let started = CommandRunner.monotonicMillis()
        let response: DeliveryResponse
        var dropped = 0
        if let command = configuration.command(for: request.channel) {
            let slot = counts.withLock { counts -> Bool in
                guard counts.running < configuration.maxConcurrent else { return false }
                counts.running += 1
                return true
            }
            if slot {
                let result = CommandRunner.run(command, environment: commandEnvironment(request), input: Array(request.message.utf8),
                                               timeoutMillis: configuration.commandTimeoutMillis)
                counts.withLock { $0.running -= 1 }
                dropped = result.discarded
                response = Self.response(result, code: request.code, timeoutMillis: configuration.commandTimeoutMillis)
            } else {
                response = DeliveryResponse(outcome: "failed", detail: "busy")
            }
        } else {
            response = DeliveryResponse(outcome: "unconfigured", detail: "no \(request.channel)_command in the delivery service's configuration")
        }
        let channel = DeliveryChannel(rawValue: request.channel) ?? .email
        var priority: DeliveryLog.Priority = .info
        if response.outcome != "sent" { priority = response.outcome == "unconfigured" ? .notice : .warning }
        let duration = "\(CommandRunner.monotonicMillis() - started)"
        let destination = ContactAddress.masked(request.destination, channel: channel)
        var fields = [("channel", request.channel), ("user", request.user), ("destination", destination),
                      ("outcome", response.outcome), ("duration_ms", duration)]
        if let detail = response.detail { fields.append(("detail", detail)) }
        if dropped > 0 { fields.append(("output_dropped", "\(dropped)")) }
        log.log(priority, "delivery", fields)
        return response
    }

    /// The whole environment of a command: the fixed PATH and locale, the request's fields but the
    /// message and the code (those go on standard input), and the service's credentials directory.
    func commandEnvironment(_ request: DeliveryRequest) -> [String: String] {
        var environment = [
            "PATH": CommandRunner.path,
            "LANG": "C.UTF-8",
            "TWOFOLD_CHANNEL": request.channel,
            "TWOFOLD_USER": request.user,
            "TWOFOLD_DESTINATION": request.destination,
            "TWOFOLD_SUBJECT": request.subject,
        ]
        if let credentials = self.environment["CREDENTIALS_DIRECTORY"], !credentials.isEmpty {
            environment["CREDENTIALS_DIRECTORY"] = credentials
        }
        return environment
    }

    static func response(_ result: CommandRunner.Result, code: String, timeoutMillis: Int) -> DeliveryResponse {
        switch result.termination {
        case .exited(0):
            return DeliveryResponse(outcome: "sent")
        case .exited(let status):
            return DeliveryResponse(outcome: "failed", detail: OutputDetail.failure("exit status \(status)", output: result.output, code: code))
        case .signaled(let signal):
            return DeliveryResponse(outcome: "failed", detail: OutputDetail.failure("killed by signal \(signal)", output: result.output, code: code))
        case .timedOut:
            return DeliveryResponse(outcome: "timeout",
                                    detail: OutputDetail.failure("no exit within \(timeoutMillis) ms, killed", output: result.output, code: code))
        case .couldNotStart(let reason):
            return DeliveryResponse(outcome: "failed", detail: OutputDetail.sanitize(reason, code: code))
        }
    }

    // MARK: - Refused peers

    /// A stranger's connections are logged at notice, five a minute at most (a local user could
    /// otherwise write journal lines as fast as it connects); the rest are counted in one line.
    private struct RefusalWindow {
        var start = 0
        var logged = 0
        var suppressed = 0
    }

    private func noteRefusedPeer() {
        let now = CommandRunner.monotonicMillis()
        let (log, suppressed) = refusedPeers.withLock { window -> (Bool, Int) in
            var suppressed = 0
            if now - window.start >= 60_000 {
                suppressed = window.suppressed
                window = RefusalWindow(start: now, logged: 0, suppressed: 0)
            }
            if window.logged < 5 {
                window.logged += 1
                return (true, suppressed)
            }
            window.suppressed += 1
            return (false, suppressed)
        }
        if suppressed > 0 {
            self.log.log(.notice, "more connections refused in the last minute", [("count", "\(suppressed)")])
        }
        if log {
            self.log.log(.notice, "connection refused: the peer is not the daemon's user")
        }
    }
}
