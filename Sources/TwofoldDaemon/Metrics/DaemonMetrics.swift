import Prometheus
import TwofoldStore

/// The metrics of one daemon, in a Prometheus registry of its own (several daemons may run in one
/// process: nothing here goes through swift-metrics' global bootstrap). Whoever records is handed
/// this object. `twofoldctl metrics` and the `metrics_listen` endpoint serve `exposition()`.
///
/// Counters and gauges are atomics; the verify path reaches its labelled counters through a cache
/// (`LoopVerifyCounters`), so a login adds no lock and no allocation but the histogram's own lock.
public final class DaemonMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// Distinct values a client-influenced label (service, host, server) takes before "other".
    public static let labelValuesLimit = 64
    /// Hosts come from the host registry (an admin's list), and a fleet has hundreds of them.
    public static let hostLabelValuesLimit = 4_096
    /// 0.1 ms to 10 s: a login decided in memory, one that waits for a commit, one that waits for a person.
    static let durationBuckets: [Duration] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                                              1_000_000, 2_500_000, 5_000_000, 10_000_000].map(Duration.microseconds)
    /// Commits per transaction: one login alone, up to PostgreSQL's cap of about 64 logins, and SQLite's uncapped batches.
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    /// Throttle delays: 1 s doubling by default, up to `throttle_max_delay_ms` (at most 600 s).
    static let delayBuckets: [Duration] = [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 300_000, 600_000]
        .map(Duration.milliseconds)

    let verifies: CappedCounterFamily
    let verifyDuration: DurationHistogram
    private let batchSize: ValueHistogram
    private let storeErrors: [StoreErrorKind: Counter]
    private let reconnects: Counter
    private let locks: Counter
    private let throttleDelays: Counter
    private let throttleDelay: DurationHistogram
    private let connections: Gauge
    private let controlRequests: CappedCounterFamily
    private let tierConnections: CappedCounterFamily
    private let tierFailovers: Counter
    private let relayDialogs: [VerifyOutcome: Counter]

    public init() {
        let registry = self.registry
        func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "twofold", metricName: metric, unitName: unit, helpText: help)
        }
        verifies = CappedCounterFamily(registry, name("verifies", "total", "Login dialogs by how they ended, PAM service and host."),
                                       labels: ["outcome", "service", "host"], limit: Self.labelValuesLimit,
                                       limits: ["host": Self.hostLabelValuesLimit])
        verifyDuration = registry.makeDurationHistogram(
            descriptor: name("verify_duration", "seconds", "Time from AUTH_START to the verdict (the time a person takes to type a code included)."),
            buckets: Self.durationBuckets)
        batchSize = registry.makeValueHistogram(descriptor: name("commit_batch_size", "", "Commits that shared one store transaction (group commit)."),
                                                buckets: Self.batchBuckets)
        let errors = name("store_errors", "total", "Store operations of logins and audits that failed, by kind.")
        storeErrors = Dictionary(uniqueKeysWithValues: StoreErrorKind.allCases.map {
            ($0, registry.makeCounter(descriptor: errors, labels: [("kind", $0.rawValue)]))
        })
        reconnects = registry.makeCounter(descriptor: name("store_reconnects", "total", "PostgreSQL connection pools replaced during an outage."))
        locks = registry.makeCounter(descriptor: name("locks", "total", "Users locked by a failure."))
        throttleDelays = registry.makeCounter(descriptor: name("throttle_delays", "total", "Answers that met a throttle delay in force (held, or refused when longer than the client waits)."))
        throttleDelay = registry.makeDurationHistogram(descriptor: name("throttle_delay", "seconds", "The throttle delay an answer met."),
                                                       buckets: Self.delayBuckets)
        connections = registry.makeGauge(descriptor: name("connections_open", "", "Connections open on the daemon's socket."))
        controlRequests = CappedCounterFamily(registry, name("control_requests", "total", "Control requests received, by request."),
                                              labels: ["request"], limit: Self.labelValuesLimit)
        tierConnections = CappedCounterFamily(registry, name("tier_connections", "total", "Connections to verification servers, by server and outcome."),
                                              labels: ["server", "outcome"], limit: Self.labelValuesLimit)
        tierFailovers = registry.makeCounter(descriptor: name("tier_failovers", "total", "Relayed logins moved to another verification server."))
        let relayed = name("relay_dialogs", "total", "Login dialogs relayed to a verification server, by outcome.")
        relayDialogs = Dictionary(uniqueKeysWithValues: VerifyOutcome.allCases.map {
            ($0, registry.makeCounter(descriptor: relayed, labels: [("outcome", $0.rawValue)]))
        })
    }

    /// The metrics in Prometheus's text format (version 0.0.4).
    public func exposition() -> String {
        registry.emitToString()
    }

    /// What the store reports into these metrics.
    public var storeObserver: StoreObserver {
        StoreObserver(batchCommitted: { [batchSize] in batchSize.record(Double($0)) }, reconnected: { [reconnects] in reconnects.increment() })
    }

    /// A store operation failed; an error that is not a `StoreError` counts as "database".
    public func storeError(_ error: any Error) {
        storeErrors[(error as? StoreError).map(StoreErrorKind.init) ?? .database]?.increment()
    }

    public func userLocked() {
        locks.increment()
    }

    /// An answer met a throttle delay with `millis` left to run.
    public func throttled(millis: Int64) {
        throttleDelays.increment()
        throttleDelay.record(.milliseconds(millis))
    }

    public func connectionOpened() {
        connections.increment()
    }

    public func connectionClosed() {
        connections.decrement()
    }

    /// A control request, by its name in the protocol (`listUsers`), or "invalid".
    public func controlRequest(_ name: String) {
        controlRequests.increment(name)
    }

    // MARK: - The verification tier (relays in fleet mode)

    /// A relay's connection to verification server `server`: e.g. "connected" or "failed".
    public func tierConnection(server: String, outcome: String) {
        tierConnections.increment(server, outcome)
    }

    /// A relayed login moved to another verification server.
    public func tierFailover() {
        tierFailovers.increment()
    }

    /// A relayed login dialog ended with `outcome`.
    public func relayDialog(outcome: VerifyOutcome) {
        relayDialogs[outcome]?.increment()
    }
}
