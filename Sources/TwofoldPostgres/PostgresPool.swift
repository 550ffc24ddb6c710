import Logging
import PostgresNIO
import Synchronization

/// The store's `PostgresClient`, whose `run()` runs in a task owned here, renewed during an outage.
///
/// postgres-nio's pool retries a failed connection after 100 ms · 1.25ⁿ, up to a minute: after a
/// long outage it could leave logins failing for a minute after the server is back. So while
/// operations fail, a pool older than `renewAfter` is replaced by a fresh one (whose first retries
/// are quick); the old one keeps serving what it holds for a grace period, then is cancelled.
final class PostgresPool: Sendable {
    private struct State {
        var client: PostgresClient
        var run: Task<Void, Never>
        var started: ContinuousClock.Instant
        /// Replaced pools' run tasks, cancelled after their grace period, awaited at shutdown.
        var retired: [Task<Void, Never>] = []
        var shutDown = false
    }

    private let configuration: PostgresClient.Configuration
    private let logger: Logger
    private let state: Mutex<State>
    /// Hears of each renewal (the daemon counts them as reconnects).
    private let onRenew: (@Sendable () -> Void)?

    init(configuration: PostgresClient.Configuration, backgroundLogger: Logger, onRenew: (@Sendable () -> Void)? = nil) {
        self.configuration = configuration
        self.onRenew = onRenew
        logger = backgroundLogger
        let (client, run) = Self.start(configuration, backgroundLogger)
        state = Mutex(State(client: client, run: run, started: .now))
    }

    private static func start(_ configuration: PostgresClient.Configuration, _ logger: Logger) -> (PostgresClient, Task<Void, Never>) {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return (client, Task { await client.run() })
    }

    var client: PostgresClient { state.withLock { $0.client } }

    /// Replaces the pool if it is older than `renewAfter`; the old one is cancelled after `grace`.
    func renewIfOlder(than renewAfter: Duration, grace: Duration) {
        let renewed = state.withLock { state -> Bool in
            guard !state.shutDown, ContinuousClock.now - state.started > renewAfter else { return false }
            let old = state.run
            (state.client, state.run) = Self.start(configuration, logger)
            state.started = .now
            state.retired.append(Task {
                try? await Task.sleep(for: grace)
                old.cancel()
                await old.value
            })
            return true
        }
        if renewed { onRenew?() }
    }

    /// Cancels every pool's `run()` and waits for them (open connections are closed), at most
    /// `limit`: a pool still connecting to a server that does not answer must not hold up the
    /// daemon's shutdown (or a test's end) for longer than an operation could take.
    func shutdown(within limit: Duration) async {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.shutDown = true
            return [state.run] + state.retired
        }
        for task in tasks { task.cancel() }
        let once = Once()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Task {
                for task in tasks { await task.value }
                if once.claim() { continuation.resume() }
            }
            Task {
                try? await Task.sleep(for: limit)
                if once.claim() {
                    logger.warning("PostgreSQL connections did not close within the limit; left to close by themselves")
                    continuation.resume()
                }
            }
        }
    }
}

/// True for the first caller only.
private final class Once: Sendable {
    private let claimed = Mutex(false)

    func claim() -> Bool {
        claimed.withLock { claimed in
            defer { claimed = true }
            return !claimed
        }
    }
}
