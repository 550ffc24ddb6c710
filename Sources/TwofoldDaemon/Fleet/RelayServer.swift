#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals
import Synchronization
import TwofoldCore
import TwofoldSystemd

/// A relay's Unix-socket server (role = relay), run as a service-lifecycle `Service`: the same
/// socket, limits per uid, timeouts and graceful shutdown as a single host's `SocketServer`, but
/// each connection is a `RelayHandler` that forwards it to the tier. It opens no store and holds
/// no key.
public final class RelayServer: Service, Sendable {
    private enum State {
        case initial
        case listening(Channel)
        case shuttingDown
        case stopped
    }

    private let source: ListenSource
    private let live: LiveConfiguration
    private let services: RelayServices
    private let forwarder: BreakGlassForwarder?
    private let admission: AdmissionControl
    private let connections = OpenConnections()
    private let state = Mutex<State>(.initial)
    private let logger: Logger
    private let environment: [String: String]
    private let shutdownGraceSeconds: Int64
    private let onListening: @Sendable () -> Void
    private let loop: any EventLoop

    init(source: ListenSource, live: LiveConfiguration, connector: TierConnector, breakGlass: BreakGlass?, clock: any WallClock,
         metrics: DaemonMetrics, logger: Logger, environment: [String: String], shutdownGraceSeconds: Int64 = 10,
         onListening: @escaping @Sendable () -> Void = {}) {
        self.source = source
        self.live = live
        let forwarder = breakGlass.map { BreakGlassForwarder(breakGlass: $0, connector: connector, logger: logger) }
        self.forwarder = forwarder
        let cache = SSHKeyCache(path: live.current.stateDirectory + "/ssh-key-cache.json", clock: clock, logger: logger) {
            live.current.sshKeys.cacheSeconds
        }
        self.services = RelayServices(connector: connector, breakGlass: breakGlass, clock: clock, live: live, metrics: metrics,
                                      logger: logger, tierReached: { forwarder?.deliver() }, sshKeys: cache)
        let admission = AdmissionControl(limits: live.current.admissionLimits)
        self.admission = admission
        live.onChange { admission.limits = $0.admissionLimits }
        self.logger = logger
        self.environment = environment
        self.shutdownGraceSeconds = shutdownGraceSeconds
        self.onListening = onListening
        self.loop = MultiThreadedEventLoopGroup.singleton.next()
    }

    public func run() async throws {
        let listener = try await bind()
        state.withLock { $0 = .listening(listener) }
        logger.notice("relaying", metadata: ["socket": "\(source)", "servers": "\(services.connector.servers.map(\.description).joined(separator: ", "))"])
        // Emergency-code events reach the tier's audit at the next chance, and at least once a minute.
        let delivery = forwarder.map { forwarder in
            loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(60)) { _ in forwarder.deliver() }
        }
        defer { delivery?.cancel() }
        SystemdNotify.send("READY=1\nSTATUS=relaying \(source) to the tier\nMAINPID=\(getpid())", environment: environment)
        onListening()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await listener.closeFuture.get()
                await self.connections.drained()
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.beginShutdown()
            self.connections.closeAll(reason: "the relay is shutting down")
        }
        state.withLock { $0 = .stopped }
        logger.notice("stopped")
    }

    private func beginShutdown() {
        let listener: Channel? = state.withLock { state in
            guard case .listening(let channel) = state else { return nil }
            state = .shuttingDown
            return channel
        }
        guard let listener else { return }
        SystemdNotify.send("STOPPING=1", environment: environment)
        listener.close(promise: nil)
        listener.eventLoop.scheduleTask(in: .seconds(shutdownGraceSeconds)) {
            self.connections.closeAll(reason: "the relay is shutting down")
        }
    }

    private func bind() async throws -> Channel {
        let (live, services, logger, admission, connections) = (self.live, self.services, self.logger, self.admission, self.connections)
        let bootstrap = ServerBootstrap(group: loop, childGroup: loop)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                PeerCredentials.of(channel).flatMapThrowing { peer in
                    connections.track(channel)
                    let sync = channel.pipeline.syncOperations
                    if let refusal = admission.admitConnection(uid: peer.uid) {
                        // Debug only: a local user at its cap could write a line per connection.
                        logger.debug("connection refused", metadata: ["peer": "\(peer)", "reason": "\(refusal)"])
                        return try sync.addHandler(admission.refusalHandler(for: refusal))
                    }
                    services.metrics.connectionOpened()
                    channel.closeFuture.whenComplete { _ in
                        admission.releaseConnection(uid: peer.uid)
                        services.metrics.connectionClosed()
                    }
                    let timeouts = live.current
                    try sync.addHandler(ConnectionTimeoutHandler(idle: .seconds(Int64(timeouts.idleTimeoutSeconds)),
                                                                 total: .seconds(Int64(timeouts.connectionTimeoutSeconds))))
                    try sync.addHandler(ByteToMessageHandler(MessageDecoder()))
                    try sync.addHandler(MessageToByteHandler(MessageEncoder()))
                    try sync.addHandler(RelayHandler(peer: peer, services: services))
                }
            }
        return try await source.bind(bootstrap)
    }
}

/// A relay as `twofoldd` runs it: the configuration, the tier connector, the relay server and its
/// metrics, and nothing else: no store, no key; its state directory holds only the emergency codes'
/// hashes.
public struct RelayDaemon: Sendable {
    public let server: RelayServer
    /// The relay's own metrics (its dialogs by outcome, its tier connections and failovers).
    public let metrics: DaemonMetrics
    let metricsEndpoint: MetricsEndpoint?
    let live: LiveConfiguration
    let environment: [String: String]

    public init(configuration: DaemonConfiguration, live: LiveConfiguration? = nil, environment: [String: String], logger: Logger,
                clock: any WallClock = SystemClock(), onListening: @escaping @Sendable () -> Void = {}) async throws {
        let live = live ?? LiveConfiguration(configuration)
        self.live = live
        self.environment = environment
        Daemon.raiseDescriptorLimit(logger: logger)
        let metrics = DaemonMetrics()
        self.metrics = metrics
        let connector = try TierConnector(fleet: configuration.fleet, environment: environment, logger: logger, metrics: metrics)
        // The state directory holds only the emergency codes' hashes and the SSH key cache (public
        // keys): no store, no key.
        try Daemon.makeDirectory(configuration.stateDirectory, mode: 0o700)
        let breakGlass = try BreakGlass(path: configuration.stateDirectory + "/break-glass.json")
        server = RelayServer(source: ListenSource.from(environment: environment, path: configuration.socketPath), live: live,
                             connector: connector, breakGlass: breakGlass, clock: clock, metrics: metrics, logger: logger,
                             environment: environment, onListening: onListening)
        metricsEndpoint = try await MetricsEndpoint.bindIfSet(configuration.metricsListen, metrics: metrics, logger: logger)
    }

    /// Runs until SIGTERM or SIGINT. SIGHUP reloads the configuration when it came from a file (the
    /// log level and the connection limits; the fleet keys need a restart), as on a single host.
    public func run(logger: Logger) async throws {
        let services = await ConfigurationReloader.withReloader([server] + (metricsEndpoint.map { [$0] } ?? []), live: live, policy: nil,
                                                               environment: environment, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
