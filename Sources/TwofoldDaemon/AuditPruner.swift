import Logging
import ServiceLifecycle
import TwofoldCore
import TwofoldStore

/// Keeps the audit table to `retentionDays` (and the sent codes' records to the send limits' hour): at start and then every `interval`, deletes the
/// records older than that, `batch` at a time, each batch its own short transaction (so logins'
/// commits are never held up for long). Does nothing while `retentionDays` is 0 (read at each
/// pass, so a reload that changes it applies from the next one).
public struct AuditPruner: Service {
    let store: any TwofoldStore
    let clock: any WallClock
    let retentionDays: @Sendable () -> Int
    let interval: Duration
    let batch: Int
    let logger: Logger

    public init(store: any TwofoldStore, clock: any WallClock, retentionDays: Int, interval: Duration = .seconds(3600),
                batch: Int = 5_000, logger: Logger) {
        self.init(store: store, clock: clock, retentionDays: { retentionDays }, interval: interval, batch: batch, logger: logger)
    }

    public init(store: any TwofoldStore, clock: any WallClock, retentionDays: @escaping @Sendable () -> Int,
                interval: Duration = .seconds(3600), batch: Int = 5_000, logger: Logger) {
        self.store = store
        self.clock = clock
        self.retentionDays = retentionDays
        self.interval = interval
        self.batch = batch
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await pruneNow()
            await pruneDeliveries()
            // Ends early on graceful shutdown or cancellation.
            let interval = self.interval
            _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Deletes the records of sends past the send limits' window and the delivered codes expired
    /// before it (whatever the audit's retention: they are no audit).
    @discardableResult
    public func pruneDeliveries() async -> Int {
        do {
            return try await store.pruneDeliveries(before: clock.nowMillis() - DeliveryConfiguration.limitWindowMillis)
        } catch {
            logger.error("pruning sent codes failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Deletes every record older than the retention period; returns how many.
    @discardableResult
    public func pruneNow() async -> Int {
        let retentionDays = self.retentionDays()
        guard retentionDays > 0 else { return 0 }
        let cutoff = clock.nowMillis() - Int64(retentionDays) * 86_400_000
        var total = 0
        while !Task.isShuttingDownGracefully {
            let deleted: Int
            do {
                deleted = try await store.pruneAudit(before: cutoff, limit: batch)
            } catch {
                logger.error("audit pruning failed", metadata: ["error": "\(error)"])
                break
            }
            total += deleted
            if deleted < batch { break }
        }
        if total > 0 {
            logger.info("audit records pruned", metadata: ["deleted": "\(total)", "retention_days": "\(retentionDays)"])
        }
        return total
    }
}
