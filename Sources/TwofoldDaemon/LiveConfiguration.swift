#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle
import Synchronization
import TwofoldSystemd
import UnixSignals

/// The configuration in force, replaced whole by a reload (SIGHUP). Readers take `current` when
/// they act (a new connection, an enrollment, a pruning pass), so a reload applies from the next
/// one on; what a running connection was given stays.
public final class LiveConfiguration: Sendable {
    /// Keys that need a restart: a changed value is logged and the running one kept.
    static let restartOnlyKeys = ["socket", "state_directory", "database", "key_file", "previous_key_files", "store", "postgresql_url",
                                  "postgresql_password_file", "postgresql_connect_timeout_ms", "postgresql_statement_timeout_ms",
                                  "postgresql_pool_size", "metrics_listen", "role", "listen", "servers", "tls_certificate", "tls_key",
                                  "tls_client_ca", "tls_server_ca", "tier_connect_timeout_ms", "max_connections_per_host",
                                  "registry_refresh_seconds"]

    public let source: ConfigurationSource?
    let logLevel: LogLevelSwitch?
    private let state: Mutex<(configuration: DaemonConfiguration, fileRead: String?)>
    private let observers = Mutex<[@Sendable (DaemonConfiguration) -> Void]>([])

    public init(_ configuration: DaemonConfiguration, fileRead: String? = nil, source: ConfigurationSource? = nil,
                logLevel: LogLevelSwitch? = nil) {
        state = Mutex((configuration, fileRead))
        self.source = source
        self.logLevel = logLevel
    }

    public var current: DaemonConfiguration { state.withLock { $0.configuration } }

    /// Calls `observer` with each configuration a reload puts in force (for what is not read per use).
    func onChange(_ observer: @escaping @Sendable (DaemonConfiguration) -> Void) {
        observers.withLock { $0.append(observer) }
    }
    /// The config file last read (nil: built-in defaults, no file).
    public var fileRead: String? { state.withLock { $0.fileRead } }

    public enum ReloadOutcome: Sendable, Equatable {
        /// In force; the restart-only keys whose new value waits for a restart.
        case reloaded(restartNeeded: [String])
        /// The new file was refused (the message says why); the running configuration is kept.
        case refused(String)
    }

    /// Reads the source again and puts it in force, or keeps the running configuration when the
    /// file does not parse or its policy keys do not make a valid policy.
    /// `policy`: the daemon's (nil for a relay, which holds none).
    func reload(policy: PolicyHolder?) -> ReloadOutcome {
        guard let source else { return .refused("no configuration source to reload from") }
        let loaded: (configuration: DaemonConfiguration, fileRead: String?)
        let configuredPolicy: Policy
        do {
            loaded = try source.load()
            configuredPolicy = try Policy(Policy.document(from: loaded.configuration))
        } catch {
            return .refused("\(error)")
        }
        var next = loaded.configuration
        let running = current
        var restartNeeded: [String] = []
        if next.socketPath != running.socketPath { restartNeeded.append("socket"); next.socketPath = running.socketPath }
        if next.stateDirectory != running.stateDirectory { restartNeeded.append("state_directory"); next.stateDirectory = running.stateDirectory }
        if next.resolvedDatabasePath != running.resolvedDatabasePath { restartNeeded.append("database") }
        if next.resolvedKeyFile != running.resolvedKeyFile { restartNeeded.append("key_file") }
        if next.previousKeyFiles != running.previousKeyFiles { restartNeeded.append("previous_key_files") }
        next.databasePath = running.databasePath
        next.keyFile = running.keyFile
        next.previousKeyFiles = running.previousKeyFiles
        if next.metricsListen != running.metricsListen { restartNeeded.append("metrics_listen"); next.metricsListen = running.metricsListen }
        restartNeeded += Self.keepStoreKeys(of: running, in: &next)
        let final = next
        state.withLock { $0 = (final, loaded.fileRead) }
        logLevel?.level = final.logLevel
        for observer in observers.withLock({ $0 }) { observer(final) }
        policy?.configured(configuredPolicy)
        return .reloaded(restartNeeded: restartNeeded)
    }
}

extension LiveConfiguration {
    /// The store is opened once: its keys keep their running values; returns the keys that changed.
    static func keepStoreKeys(of running: DaemonConfiguration, in next: inout DaemonConfiguration) -> [String] {
        var changed: [String] = []
        func keep<T: Equatable>(_ key: String, _ path: WritableKeyPath<DaemonConfiguration, T>) {
            if next[keyPath: path] != running[keyPath: path] { changed.append(key) }
            next[keyPath: path] = running[keyPath: path]
        }
        keep("store", \.store)
        keep("postgresql_url", \.postgresqlURL)
        keep("postgresql_password_file", \.postgresqlPasswordFile)
        keep("postgresql_connect_timeout_ms", \.postgresqlConnectTimeoutMillis)
        keep("postgresql_statement_timeout_ms", \.postgresqlStatementTimeoutMillis)
        keep("postgresql_pool_size", \.postgresqlPoolSize)
        keep("role, listen, servers and tls_*", \.fleet)
        return changed
    }
}

/// Reloads the configuration at each SIGHUP (`systemctl reload twofoldd`) and logs the outcome.
/// systemd hears of it the sd_notify way: RELOADING=1, then READY=1 with a STATUS= saying whether
/// the new file is in force or was refused (the daemon stays ready either way).
struct ConfigurationReloader: Service {
    let live: LiveConfiguration
    /// nil on a relay: it holds no policy.
    let policy: PolicyHolder?
    let environment: [String: String]
    /// Made before the service group starts, so a SIGHUP that comes before this service runs is
    /// queued here and never takes the default action (terminate).
    let signals: UnixSignalsSequence
    let logger: Logger
    /// Called after each reload (tests wait on it).
    var onReload: @Sendable (LiveConfiguration.ReloadOutcome) -> Void = { _ in }

    /// `services` and, when the configuration came from a source (a file), a reloader for SIGHUP.
    static func withReloader(_ services: [any Service], live: LiveConfiguration, policy: PolicyHolder?, environment: [String: String],
                             logger: Logger) async -> [any Service] {
        guard live.source != nil else { return services }
        // Trapped before the group starts, so an early SIGHUP never terminates the daemon.
        let signals = await UnixSignalsSequence(trapping: .sighup)
        return services + [ConfigurationReloader(live: live, policy: policy, environment: environment, signals: signals, logger: logger)]
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            for await _ in signals {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                SystemdNotify.send("RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000)",
                                   environment: environment)
                let outcome = live.reload(policy: policy)
                let status: String
                switch outcome {
                case .reloaded(let restartNeeded):
                    let file = live.fileRead ?? "none (built-in defaults)"
                    var metadata: Logger.Metadata = ["file": "\(file)"]
                    status = "configuration reloaded from \(file)"
                        + (restartNeeded.isEmpty ? "" : "; needs a restart: \(restartNeeded.joined(separator: ", "))")
                    if !restartNeeded.isEmpty { metadata["needs_restart"] = "\(restartNeeded.joined(separator: ","))" }
                    logger.notice("configuration reloaded", metadata: metadata)
                case .refused(let reason):
                    status = "configuration reload refused, running configuration kept: \(reason)"
                    logger.error("configuration reload refused; the running configuration is kept", metadata: ["reason": "\(reason)"])
                }
                SystemdNotify.send("READY=1\nSTATUS=\(status)", environment: environment)
                onReload(outcome)
            }
        }
    }
}
