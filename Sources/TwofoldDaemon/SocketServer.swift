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
import TwofoldSystemd

/// The Unix-socket server of `twofoldd`, run as a service-lifecycle `Service`: each connection is a
/// `ConnectionHandler` on its event loop (a login dialog never leaves the loop but for the group
/// commit), a cap on concurrent connections, idle and total timeouts per connection. On graceful
/// shutdown it stops accepting, lets connections in flight finish (for at most
/// `shutdownGraceSeconds`, then closes them) and returns.
public final class SocketServer: Service, Sendable {
    /// Lifecycle of the server.
    enum State: Sendable {
        case initial
        /// The Unix socket's listener, and the tier's (a server's TLS listener for relays) when there is one.
        case listening([Channel])
        case shuttingDown
        case stopped
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
    private let connections = OpenConnections()
    private let onListening: @Sendable () -> Void
    private let admission: AdmissionControl
    private let refusals: RefusalAuditor
    /// A server's listener for relays (role = server), or nil.
    private let tier: TierListener?
    private let metrics: DaemonMetrics
    /// The one loop that accepts and serves every connection. With connections spread over several
    /// loops, NIO hops each accepted connection between the accepting loop and its own three times
    /// (three thread wake-ups); measured on 2 cores, one socket loop gave more verifies/s at 64
    /// clients (5,800 vs 5,300), a lower p99 (17 vs 26 ms) and a faster single login. The other
    /// loops of the group run the async work (control requests, enroll at login) and the group
    /// commit runs on its own thread.
    private let socketLoop: any EventLoop

    init(source: ListenSource, live: LiveConfiguration, authenticator: Authenticator, enrollment: EnrollmentService, delivery: CodeDelivery,
                control: ControlService, refusals: RefusalAuditor, metrics: DaemonMetrics, logger: Logger, group: MultiThreadedEventLoopGroup = .singleton,
                environment: [String: String] = [:], shutdownGraceSeconds: Int64 = 10, tier: TierListener? = nil,
                onListening: @escaping @Sendable () -> Void = {}) {
        self.tier = tier
        self.source = source
        self.live = live
        self.authenticator = authenticator
        self.dialogs = LoginDialogRunner(authenticator: authenticator, enrollment: enrollment, delivery: delivery, logger: logger)
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
        var listeners = [try await bind(services)]
        logger.notice("listening", metadata: ["socket": "\(source)", "max_connections": "\(live.current.maxConnections)"])
        var registrySweep: RepeatedTask?
        if let tier {
            do {
                listeners.append(try await tier.bind(services: services, loop: socketLoop) { self.connections.track($0) })
            } catch {
                listeners[0].close(promise: nil)
                throw error
            }
            registrySweep = tier.sweepRegistry(on: socketLoop, logger: logger)
        }
        state.withLock { $0 = .listening(listeners) }
        SystemdNotify.send("READY=1\nSTATUS=listening on \(source)\nMAINPID=\(getpid())", environment: environment)
        onListening()
        // Aggregated refusal records are written once their minute is over.
        let refusals = self.refusals
        let sweep = socketLoop.scheduleRepeatedTask(initialDelay: .seconds(60), delay: .seconds(60)) { _ in refusals.flush() }

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                for listener in listeners { try? await listener.closeFuture.get() }
                await self.connections.drained()
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.beginShutdown()
            self.connections.closeAll(reason: "twofoldd is shutting down")
        }
        sweep.cancel()
        deadlineSweep.cancel()
        registrySweep?.cancel()
        refusals.flush(all: true)
        state.withLock { $0 = .stopped }
        logger.notice("stopped")
    }

    /// Stops accepting; closes connections still open after the grace period.
    private func beginShutdown() {
        let listeners: [Channel] = state.withLock { state in
            guard case .listening(let channels) = state else { return [] }
            state = .shuttingDown
            return channels
        }
        guard let first = listeners.first else { return }
        SystemdNotify.send("STOPPING=1", environment: environment)
        logger.notice("shutting down: no new connections")
        for listener in listeners { listener.close(promise: nil) }
        first.eventLoop.scheduleTask(in: .seconds(shutdownGraceSeconds)) { self.connections.closeAll(reason: "twofoldd is shutting down") }
    }

    /// Tracks a new connection (so shutdown can wait for it) and admits it under the limits of
    /// its peer: nil, or why it is refused. Whatever it is, its close gives everything back.
    private func admit(_ channel: Channel, peer: PeerCredentials) -> AdmissionControl.Refusal? {
        connections.track(channel)
        metrics.connectionOpened()
        let refusal = admission.admitConnection(uid: peer.uid)
        let (admission, metrics) = (self.admission, self.metrics)
        channel.closeFuture.whenComplete { _ in
            metrics.connectionClosed()
            if refusal == nil { admission.releaseConnection(uid: peer.uid) }
        }
        return refusal
    }

    /// The pipeline of a connection refused by a limit: a verdict, then closed; audited at most a few
    /// times a minute per uid. Past the cap on connections being drained, answered and closed at once.
    private func refuse(_ channel: Channel, peer: PeerCredentials, _ refusal: AdmissionControl.Refusal) throws {
        refusals.record(AuditRecord(timeMillis: refusals.nowMillis, action: "connect", peerUID: peer.uid, outcome: "refused",
                                     reason: refusal.description))
        try channel.pipeline.syncOperations.addHandler(admission.refusalHandler(for: refusal))
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
        return try await source.bind(bootstrap)
    }
}
