import Prometheus
import Synchronization

/// A labelled counter whose label values are bounded: each label keeps the first `limit` distinct
/// values it sees, and counts any later one as "other". Some values come from clients (the PAM
/// service of an AUTH_START is whatever a local peer sends), and every distinct value would be a
/// series kept and scraped for the life of the daemon.
final class CappedCounterFamily: Sendable {
    static let other = "other"

    private let registry: PrometheusCollectorRegistry
    /// The family's full name and help (a `MetricNameDescriptor` is not Sendable).
    private let name: String
    private let help: String
    private let labelNames: [String]
    /// The number of distinct values each label keeps, in label order.
    private let limits: [Int]
    /// The values kept so far, per label.
    private let kept: Mutex<[Set<String>]>

    /// `limits` overrides `limit` for some labels (the `host` of a fleet: registered names, not a client's).
    init(_ registry: PrometheusCollectorRegistry, _ descriptor: MetricNameDescriptor, labels: [String], limit: Int, limits: [String: Int] = [:]) {
        self.registry = registry
        name = descriptor.name
        help = descriptor.helpText ?? ""
        self.labelNames = labels
        self.limits = labels.map { limits[$0] ?? limit }
        kept = Mutex(Array(repeating: [], count: labels.count))
    }

    /// The counter of `values` (one per label, in order) and whether they were all kept as they are.
    /// Takes a lock and may allocate: callers on a hot path cache what it returns when `exact`.
    func counter(_ values: [String]) -> (counter: Counter, exact: Bool) {
        precondition(values.count == labelNames.count, "one value per label")
        let labels = kept.withLock { kept in
            values.indices.map { index -> String in
                let value = values[index]
                if kept[index].contains(value) { return value }
                guard kept[index].count < limits[index] else { return Self.other }
                kept[index].insert(value)
                return value
            }
        }
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        let counter = registry.makeCounter(descriptor: descriptor, labels: Array(zip(labelNames, labels)))
        return (counter, labels == values)
    }

    /// Adds one to the counter of `values`.
    func increment(_ values: String...) {
        counter(values).counter.increment()
    }
}
