#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOPosix
import ServiceLifecycle
import TwofoldCore
import TwofoldCrypto
import TwofoldStore
import UnixSignals

/// Builds the running daemon from a configuration: the state directory, the key, the store, the
/// authenticator, the socket server and the metrics, ready to hand to a `ServiceGroup`.
public struct Daemon: Sendable {
    public let server: SocketServer
    public let store: any TwofoldStore
    /// This daemon's metrics (its own registry), recorded by everything below.
    public let metrics: DaemonMetrics
    /// The HTTP endpoint of `metrics_listen`, bound at start; nil when it is not set.
    let metricsEndpoint: MetricsEndpoint?
    /// Deletes audit records past `audit_retention_days`.
    public let pruner: AuditPruner
    /// The configuration in force (a SIGHUP reloads it when it came from a source).
    public let live: LiveConfiguration
    let policy: PolicyHolder
    let environment: [String: String]

    /// Opens (or creates) the state and prepares the server. Errors are for the operator: they name
    /// the file and the problem and never contain key material.
    /// `live` carries where the configuration came from (a reload reads it again); without it the
    /// daemon runs on `configuration` and ignores SIGHUP's reload.
    public init(configuration: DaemonConfiguration, live: LiveConfiguration? = nil, environment: [String: String], logger: Logger,
                clock: any WallClock = SystemClock(), onListening: @escaping @Sendable () -> Void = {}) async throws {
        let live = live ?? LiveConfiguration(configuration)
        self.live = live
        self.environment = environment
        try Self.makeDirectory(configuration.stateDirectory, mode: 0o700)
        BackupFile.removeStale(in: configuration.stateDirectory, logger: logger)
        Self.raiseDescriptorLimit(logger: logger)
        guard let keys = try DaemonKeys.load(configuration: configuration, environment: environment, create: true) else {
            throw ConfigurationError("no sealing key")
        }
        if keys.sealingSource == "credential" { logger.info("sealing key from systemd credential") }
        logger.info("keyring loaded", metadata: ["keys": "\(keys.summary)"])
        let metrics = DaemonMetrics()
        self.metrics = metrics
        store = try await Self.openStore(configuration: configuration, keys: keys, environment: environment, logger: logger, observer: metrics.storeObserver)
        let pepper = try await Self.recoveryPepper(store: store, keys: keys)
        let policy = try await PolicyHolder.load(store: store, configuration: configuration)
        self.policy = policy
        let authenticator = Authenticator(store: store, clock: clock, policy: policy, recoveryPepper: pepper, metrics: metrics, logger: logger,
                                          keySettings: { live.current.fido2.fitting(idleTimeout: live.current.idleTimeoutSeconds) })
        let enrollment = EnrollmentService(store: store, clock: clock, policy: policy, recoveryPepper: pepper,
                                           issuer: live.current.issuer, logger: logger)
        let delivery = CodeDelivery(store: store, authenticator: authenticator, clock: clock, pepper: pepper, policy: policy,
                                    logger: logger) { live.current.delivery }
        let refusals = RefusalAuditor(clock: clock, perMinute: live.current.refusalsAuditedPerMinute) { mutations in
            authenticator.commit(mutations) { _ in }
        }
        let tierServices = configuration.fleet.role == .server ? TierServices(
            registry: HostRegistry(store: store), connections: HostConnections { live.current.fleet.maxConnectionsPerHost }, live: live) : nil
        let control = ControlService(store: store, authenticator: authenticator, enrollment: enrollment, policy: policy, clock: clock,
                                     live: live, keys: keys, recoveryPepper: pepper, refusals: refusals, delivery: delivery, metrics: metrics,
                                     logger: logger) {
            await tierServices?.refreshRegistry(logger: logger)
        }
        let source = ListenSource.from(environment: environment, path: configuration.socketPath)
        pruner = AuditPruner(store: store, clock: clock, retentionDays: { live.current.auditRetentionDays }, logger: logger)
        let tier = try tierServices.map { try TierListener(fleet: configuration.fleet, services: $0, environment: environment) }
        server = SocketServer(source: source, live: live, authenticator: authenticator, enrollment: enrollment, delivery: delivery, control: control,
                              refusals: refusals, metrics: metrics, logger: logger, environment: environment, tier: tier,
                              onListening: onListening)
        metricsEndpoint = try await MetricsEndpoint.bindIfSet(configuration.metricsListen, metrics: metrics, logger: logger)
    }

    /// The store, or an error for the operator when the keyring holds no key the database knows.
    static func openStore(configuration: DaemonConfiguration, keys: DaemonKeys, environment: [String: String],
                          logger: Logger, observer: StoreObserver) async throws -> any TwofoldStore {
        do {
            return try await StoreFactory.makeStore(configuration: configuration, keyring: keys.keyring, environment: environment,
                                                    logger: logger, observer: observer)
        } catch StoreError.wrongKey {
            throw keys.unknownToDatabase(StoreFactory.location(configuration))
        }
    }

    /// The store's own recovery pepper; a backend that keeps none gets the sealing key's derived one,
    /// as before key rotation, and then must not rotate (its recovery codes would stop working).
    static func recoveryPepper(store: any TwofoldStore, keys: DaemonKeys) async throws -> SecretBytes {
        if let pepper = try await store.recoveryPepper() { return pepper }
        guard keys.keyring.previous.isEmpty else {
            throw ConfigurationError("this store keeps no recovery pepper of its own and cannot rotate keys: configure no previous keys")
        }
        return keys.keyring.sealing.recoveryPepper
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully and closes the store. SIGHUP reloads
    /// the configuration when it came from a source (a file).
    public func run(logger: Logger) async throws {
        let services = await ConfigurationReloader.withReloader([server, pruner] + (metricsEndpoint.map { [$0] } ?? []), live: live,
                                                               policy: policy, environment: environment, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    /// Every connection is a descriptor, refused ones too while they get their verdict: the soft
    /// limit (often 1,024) is raised to the hard one, so a flood meets our limits, not EMFILE.
    static func raiseDescriptorLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = min(limit.rlim_max, 65_536)
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("cannot raise the open-files limit", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else { throw ConfigurationError("state directory \(path) is not a directory") }
            return
        }
        // Create missing parents too (a local state directory such as ./state).
        var built = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, mode) != 0 && errno != EEXIST {
                throw ConfigurationError("cannot create state directory \(built): \(String(cString: strerror(errno)))")
            }
        }
    }
}
