#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TwofoldProtocol
import TwofoldStore

/// Where the server takes its listening socket from.
public enum ListenSource: Sendable, Equatable {
    /// Bind this path (a stale socket file is replaced; the file is made connectable by everyone:
    /// authorization is by SO_PEERCRED, not by file mode).
    case path(String)
    /// A bound, listening socket handed over by systemd (LISTEN_FDS).
    case descriptor(Int32)
}

/// The Unix-socket server of `twofoldd`, run as a service-lifecycle `Service`: each connection is a
/// `ConnectionHandler` on its event loop (a login dialog never leaves the loop but for the group
/// commit), a cap on concurrent connections, idle and total timeouts per connection. On graceful
/// shutdown it stops accepting, lets connections in flight finish (for at most
/// `shutdownGraceSeconds`, then closes them) and returns.
public final class SocketServer: Service, Sendable {
    /// Lifecycle of the server.
    enum State: Sendable {
        case initial
        case listening(Channel)
        case shuttingDown
        case stopped
    }

    /// Open connections, and who waits for there to be none.
    private struct Connections {
        var open: [ObjectIdentifier: Channel] = [:]
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let source: ListenSource
    private let live: LiveConfiguration
    private let authenticator: Authenticator
    private let dialogs: LoginDialogRunner
    private let control: ControlService
    private let logger: Logger
    private let environment: [String: String]
    private let shutdownGraceSeconds: Int64
    private let state = Mutex<State>(.initial)
    private let connections = Mutex(Connections())
    private let onListening: @Sendable () -> Void
    private let admission: AdmissionControl
    private let refusals: RefusalAuditor
    private let metrics: DaemonMetrics
    /// The one loop that accepts and serves every connection. With connections spread over several
    /// loops, NIO hops each accepted connection between the accepting loop and its own three times
    /// (three thread wake-ups); measured on 2 cores, one socket loop gave more verifies/s at 64
    /// clients (5,800 vs 5,300), a lower p99 (17 vs 26 ms) and a faster single login. The other
    /// loops of the group run the async work (control requests, enroll at login) and the group
    /// commit runs on its own thread.
    private let socketLoop: any EventLoop

    init(source: ListenSource, live: LiveConfiguration, authenticator: Authenticator, enrollment: EnrollmentService,
                control: ControlService, refusals: RefusalAuditor, metrics: DaemonMetrics, logger: Logger, group: MultiThreadedEventLoopGroup = .singleton,
                environment: [String: String] = [:], shutdownGraceSeconds: Int64 = 10, onListening: @escaping @Sendable () -> Void = {}) {
        self.source = source
        self.live = live
        self.authenticator = authenticator
        self.dialogs = LoginDialogRunner(authenticator: authenticator, enrollment: enrollment, logger: logger)
        self.control = control
        self.logger = logger
        let admission = AdmissionControl(limits: live.current.admissionLimits)
        self.admission = admission
        live.onChange { admission.limits = $0.admissionLimits }
        self.refusals = refusals
        self.metrics = metrics
        self.environment = environment
        self.shutdownGraceSeconds = shutdownGraceSeconds
        self.onListening = onListening
        self.socketLoop = group.next()
    }

    public func run() async throws {
        // The login reader of the socket loop, so a login reads its record without leaving the loop.
        let reader = try authenticator.store.makeLoginReader().map { LoopLoginReader($0, loop: socketLoop) }
        let deadlines = VerdictDeadlines(loop: socketLoop)
        let services = ConnectionServices(authenticator: authenticator, dialogs: dialogs, control: control, admission: admission,
                                          refusals: refusals, deadlines: deadlines, verifies: LoopVerifyCounters(metrics, loop: socketLoop),
                                          logger: logger, reader: reader)
        let deadlineSweep = socketLoop.scheduleRepeatedTask(initialDelay: VerdictDeadlines.sweepInterval,
                                                            delay: VerdictDeadlines.sweepInterval) { _ in deadlines.sweep() }
        let listener = try await bind(services)
        state.withLock { $0 = .listening(listener) }
        logger.notice("listening", metadata: ["socket": "\(describe(source))", "max_connections": "\(live.current.maxConnections)"])
        SystemdNotify.send("READY=1\nSTATUS=listening on \(describe(source))\nMAINPID=\(getpid())", environment: environment)
        onListening()
        // Aggregated refusal records are written once their minute is over.
        let refusals = self.refusals
        let sweep = socketLoop.scheduleRepeatedTask(initialDelay: .seconds(60), delay: .seconds(60)) { _ in refusals.flush() }

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await listener.closeFuture.get()
                await self.drained()
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.beginShutdown()
            self.closeAll()
        }
        sweep.cancel()
        deadlineSweep.cancel()
        refusals.flush(all: true)
        state.withLock { $0 = .stopped }
        logger.notice("stopped")
    }

    /// Stops accepting; closes connections still open after the grace period.
    private func beginShutdown() {
        let listener: Channel? = state.withLock { state in
            guard case .listening(let channel) = state else { return nil }
            state = .shuttingDown
            return channel
        }
        guard let listener else { return }
        SystemdNotify.send("STOPPING=1", environment: environment)
        logger.notice("shutting down: no new connections")
        listener.close(promise: nil)
        listener.eventLoop.scheduleTask(in: .seconds(shutdownGraceSeconds)) { self.closeAll() }
    }

    /// Ends every connection still open: a started login dialog gets a verdict first.
    private func closeAll() {
        let remaining = connections.withLock { Array($0.open.values) }
        for channel in remaining {
            channel.pipeline.fireUserInboundEventTriggered(DialogCutOff(verdict: .unavailable, reason: "twofoldd is shutting down"))
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    /// Returns once no connection is open.
    private func drained() async {
        await withCheckedContinuation { continuation in
            let done = connections.withLock { c -> Bool in
                if c.open.isEmpty { return true }
                c.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Tracks a new connection (so shutdown can wait for it) and admits it under the limits of
    /// its peer: nil, or why it is refused. Whatever it is, its close gives everything back.
    private func admit(_ channel: Channel, peer: PeerCredentials) -> AdmissionControl.Refusal? {
        let id = ObjectIdentifier(channel)
        connections.withLock { c in c.open[id] = channel }
        metrics.connectionOpened()
        let refusal = admission.admitConnection(uid: peer.uid)
        let (admission, metrics) = (self.admission, self.metrics)
        channel.closeFuture.whenComplete { _ in
            metrics.connectionClosed()
            if refusal == nil { admission.releaseConnection(uid: peer.uid) }
            let waiters = self.connections.withLock { c -> [CheckedContinuation<Void, Never>] in
                c.open.removeValue(forKey: id)
                guard c.open.isEmpty else { return [] }
                defer { c.drainWaiters = [] }
                return c.drainWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        return refusal
    }

    /// The pipeline of a connection refused by a limit: a verdict, then closed; audited at most a few
    /// times a minute per uid. Past the cap on connections being refused, closed at once.
    private func refuse(_ channel: Channel, peer: PeerCredentials, _ refusal: AdmissionControl.Refusal) throws {
        refusals.record(AuditRecord(timeMillis: refusals.nowMillis, action: "connect", peerUID: peer.uid, outcome: "refused",
                                     reason: refusal.description))
        let sync = channel.pipeline.syncOperations
        guard admission.beginRefusing() else {
            try sync.addHandler(CloseOnActiveHandler())
            return
        }
        let admission = self.admission
        try sync.addHandler(RefusedConnectionHandler(reason: refusal.description) { admission.endRefusing() })
    }

    private func bind(_ services: ConnectionServices) async throws -> Channel {
        let live = self.live
        let bootstrap = ServerBootstrap(group: socketLoop, childGroup: socketLoop)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                PeerCredentials.of(channel).flatMapThrowing { peer in
                    if let refusal = self.admit(channel, peer: peer) {
                        return try self.refuse(channel, peer: peer, refusal)
                    }
                    let sync = channel.pipeline.syncOperations
                    // Taken per connection, so a reload applies from the next one on.
                    let timeouts = live.current
                    try sync.addHandler(ConnectionTimeoutHandler(idle: .seconds(Int64(timeouts.idleTimeoutSeconds)),
                                                                 total: .seconds(Int64(timeouts.connectionTimeoutSeconds))))
                    try sync.addHandler(ByteToMessageHandler(MessageDecoder()))
                    try sync.addHandler(MessageToByteHandler(MessageEncoder()))
                    try sync.addHandler(ConnectionHandler(services: services, peer: peer))
                }
            }
        switch source {
        case .path(let path):
            try prepareSocketDirectory(for: path)
            let server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            guard chmod(path, 0o666) == 0 else {
                server.close(promise: nil)
                throw ConfigurationError("cannot set the mode of \(path): \(String(cString: strerror(errno)))")
            }
            return server
        case .descriptor(let fd):
            return try await bootstrap.withBoundSocket(fd).get()
        }
    }

    private func prepareSocketDirectory(for path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw ConfigurationError("cannot create socket directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    private func describe(_ source: ListenSource) -> String {
        switch source {
        case .path(let p): p
        case .descriptor(let fd): "systemd socket (fd \(fd))"
        }
    }
}
