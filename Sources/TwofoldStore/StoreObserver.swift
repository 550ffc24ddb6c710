/// What a store tells of its own work, for the daemon's metrics. Plain closures, so that no store
/// target depends on a metrics library. They run on the store's threads (the commit thread, the
/// drain task, the caller of an operation) and must be quick and never block.
public struct StoreObserver: Sendable {
    /// A group-commit batch committed: how many commits (callers) shared its transaction.
    public var batchCommitted: (@Sendable (_ commits: Int) -> Void)?
    /// A network store replaced its connection pool during an outage (a reconnect).
    public var reconnected: (@Sendable () -> Void)?

    public init(batchCommitted: (@Sendable (_ commits: Int) -> Void)? = nil, reconnected: (@Sendable () -> Void)? = nil) {
        self.batchCommitted = batchCommitted
        self.reconnected = reconnected
    }
}
