import Logging
import PostgresNIO
import Synchronization
import TwofoldStore

/// The store's connections: a pool (PostgresPool), every operation bounded in time, transactions,
/// and the outage log.
///
/// Nothing here leaves state on a server session: no named prepared statements (`query(_:)` sends
/// Parse/Bind/Execute on the unnamed statement and portal, see postgres-nio's
/// `PostgresChannelHandler.sendParseDescribeBindExecuteAndSyncMessage`), no session `SET` (settings
/// are `set_config(..., true)`, i.e. SET LOCAL, inside a transaction), no LISTEN, no session
/// advisory lock: the store works through PgBouncer in transaction pooling mode.
final class PostgresConnector: Sendable {
    let configuration: PostgresStoreConfiguration
    private let pool: PostgresPool
    private let logger: Logger
    /// postgres-nio's own logs stay off: a query's log could carry its parameters, and an outage would
    /// log every reconnect attempt. The store logs outages itself, once.
    private static let quiet = Logger(label: "twofold.store.postgres-nio", factory: { _ in SwiftLogNoOpLogHandler() })
    private let health = Mutex(Health())

    private struct Health {
        var failing = false
        var failures = 0
    }

    /// `onReconnect` hears of each pool replaced during an outage.
    init(configuration: PostgresStoreConfiguration, logger: Logger, onReconnect: (@Sendable () -> Void)? = nil) {
        self.configuration = configuration
        self.logger = logger
        pool = PostgresPool(configuration: configuration.clientConfiguration(), backgroundLogger: Self.quiet, onRenew: onReconnect)
    }

    /// Stops the pool: cancels `run()` and waits for it (open connections are closed).
    func shutdown() async {
        await pool.shutdown(within: limit())
    }

    /// The longest one operation of `statements` statements may take: a connection, then the statements.
    func limit(statements: Int = 1, statementTimeout: Duration? = nil) -> Duration {
        configuration.connectTimeout + (statementTimeout ?? configuration.statementTimeout) * max(statements, 1)
    }

    /// Each statement's bound while the schema is opened at startup: creating or migrating it, or
    /// waiting for another daemon that does, under load, takes longer than a login's statement may
    /// (the configured bound, 3 s by default), and a daemon that gave up there would not start.
    static let setupStatementTimeout: Duration = .seconds(30)

    /// Runs `body` on a pooled connection, within `limit`: when the time is up, waiting for a
    /// connection is cancelled, or the statement in flight fails and the connection in use is
    /// closed, and the call fails with `StoreError.database`. Errors come out as `StoreError`.
    func withConnection<T: Sendable>(statements: Int = 1, statementTimeout: Duration? = nil,
                                     _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let limit = limit(statements: statements, statementTimeout: statementTimeout)
        let lease = LeaseGuard()
        let client = pool.client
        do {
            let value = try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await client.withConnection { connection in
                        guard lease.begin(connection) else { throw TimedOut() }
                        defer { lease.end() }
                        return try await LeaseGuard.$current.withValue(lease) { try await body(connection) }
                    }
                }
                group.addTask {
                    do { try await Task.sleep(for: limit) } catch { return nil }
                    lease.expire()
                    throw TimedOut()
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else { throw TimedOut() }
                return value
            }
            noteSuccess()
            return value
        } catch {
            var mapped = Self.storeError(error, limit: limit)
            if Self.isOutage(error) {
                noteOutage(mapped)
                if case .database(let text) = mapped { mapped = .unreachable(text) }
                // Quick retries once the server is back; operations in flight keep their pool.
                pool.renewIfOlder(than: max(self.limit(), .seconds(5)), grace: self.limit(statements: 3))
            }
            throw mapped
        }
    }

    /// Runs `body` in one transaction, committed when it returns. With `settings` the transaction
    /// first sets its own synchronous commit and timeouts (one round trip); the verify batch folds
    /// them into its first statement instead. `statementTimeout` replaces the configured bound
    /// (`setupStatementTimeout`). Round trips: BEGIN, [settings], body's, COMMIT.
    func transaction<T: Sendable>(statements: Int = 1, settings: Bool = true, statementTimeout: Duration? = nil,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        var configuration = configuration
        if let statementTimeout { configuration.statementTimeout = statementTimeout }
        return try await withConnection(statements: statements, statementTimeout: statementTimeout) { [configuration] connection in
            try await connection.run("BEGIN")
            do {
                if settings { try await connection.run(Self.settingsQuery(configuration, statements: statements)) }
                let value = try await body(connection)
                // An aborted transaction answers COMMIT with ROLLBACK, not an error.
                guard try await connection.run("COMMIT").metadata.command == "COMMIT" else {
                    throw StoreError.database("PostgreSQL rolled the transaction back")
                }
                return value
            } catch {
                if !connection.isClosed { _ = try? await connection.run("ROLLBACK") }
                throw error
            }
        }
    }

    /// SET LOCAL of what every write transaction needs, as one SELECT so it can stand in a larger one:
    /// commit waits for the WAL flush (whatever the role's or database's default); each statement,
    /// and the transaction idling between them, is bounded.
    static func settingsQuery(_ configuration: PostgresStoreConfiguration, statements: Int = 1) -> PostgresQuery {
        let statement = String(configuration.statementTimeout.milliseconds)
        let idle = String((configuration.connectTimeout + configuration.statementTimeout * max(statements, 1)).milliseconds)
        return """
            SELECT set_config('synchronous_commit', 'on', true), set_config('statement_timeout', \(statement), true),
                set_config('idle_in_transaction_session_timeout', \(idle), true)
            """
    }

    /// True between the first failure of an outage and the next success.
    var isFailing: Bool { health.withLock { $0.failing } }

    /// Logs the first failure of an outage, not one per request, with its cause: the pool retries
    /// in the background and reports only that its time ran out, so a connection of its own asks
    /// the server why (a wrong password, a database that does not exist, a refused connection).
    private func noteOutage(_ error: StoreError) {
        let first = health.withLock { health -> Bool in
            health.failures += 1
            defer { health.failing = true }
            return !health.failing
        }
        guard first else { return }
        Task {
            let cause = await diagnose() ?? error
            logger.error("PostgreSQL unreachable: store operations fail until it answers again", metadata: ["error": "\(cause)"])
        }
    }

    /// Why a connection cannot be made, from one made outside the pool (bounded by the connect
    /// timeout); nil when it can.
    func diagnose() async -> StoreError? {
        let limit = configuration.connectTimeout
        do {
            let settings = try configuration.connectionConfiguration()
            let connection = try await withThrowingTaskGroup(of: PostgresConnection?.self) { group in
                group.addTask { try await PostgresConnection.connect(configuration: settings, id: 0, logger: Self.quiet) }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let connection = first else { throw TimedOut() }
                return connection
            }
            try? await connection.close()
            return nil
        } catch {
            return Self.storeError(error, limit: limit)
        }
    }

    /// Logs the end of an outage, once.
    private func noteSuccess() {
        let failures = health.withLock { health -> Int? in
            guard health.failing else { return nil }
            defer { health = Health() }
            return health.failures
        }
        if let failures {
            logger.notice("PostgreSQL reachable again", metadata: ["failed operations": "\(failures)"])
        }
    }
}

/// The time limit of an operation ran out.
struct TimedOut: Error {}

/// The connection was closed (by the server, or by the time limit) before the statement was sent.
struct ConnectionClosed: Error {}

/// The connection an operation is using and the answer it waits for, so that its time limit can
/// fail that answer and close the connection; and whether the limit has passed, so that a
/// connection leased too late is not used.
private final class LeaseGuard: Sendable {
    /// The guard of the operation the current task runs (`run` registers its answers with it).
    @TaskLocal static var current: LeaseGuard?

    private struct State {
        var connection: PostgresConnection?
        var expired = false
        var answers: [ObjectIdentifier: EventLoopPromise<PostgresQueryResult>] = [:]
    }

    private let state = Mutex(State())

    func begin(_ connection: PostgresConnection) -> Bool {
        state.withLock { state in
            guard !state.expired else { return false }
            state.connection = connection
            return true
        }
    }

    func end() {
        state.withLock { $0.connection = nil }
    }

    func expire() {
        let (connection, answers) = state.withLock { state in
            state.expired = true
            defer { state.answers = [:] }
            return (state.connection, Array(state.answers.values))
        }
        // postgres-nio drops a statement written to a channel that is already closed without
        // answering it: failing the answer here is what ends the wait.
        for answer in answers { answer.fail(TimedOut()) }
        // Fails the statement in flight; the pool drops the connection.
        _ = connection?.close() as EventLoopFuture<Void>?
    }

    /// Registers an answer to fail at `expire`; false when the limit has already passed.
    func track(_ answer: EventLoopPromise<PostgresQueryResult>) -> Bool {
        state.withLock { state in
            guard !state.expired else { return false }
            state.answers[ObjectIdentifier(answer.futureResult)] = answer
            return true
        }
    }

    func untrack(_ answer: EventLoopPromise<PostgresQueryResult>) {
        _ = state.withLock { $0.answers.removeValue(forKey: ObjectIdentifier(answer.futureResult)) }
    }
}

extension PostgresConnection {
    /// Runs one statement and reads its rows and command tag (one round trip). A statement sent on a
    /// connection the server has closed meanwhile (an idle transaction timed out while this process
    /// had no thread to go on with it) would never be answered: it fails at once when the connection
    /// is known closed, else when its operation's time is up (`LeaseGuard`).
    @discardableResult
    func run(_ query: PostgresQuery) async throws -> PostgresQueryResult {
        guard !isClosed else { throw ConnectionClosed() }
        let answer = eventLoop.makePromise(of: PostgresQueryResult.self)
        let lease = LeaseGuard.current
        guard lease?.track(answer) ?? true else { throw TimedOut() }
        defer { lease?.untrack(answer) }
        self.query(query, logger: PostgresConnector.queryLogger).cascade(to: answer)
        return try await answer.futureResult.get()
    }
}

extension PostgresConnector {
    static let queryLogger = quiet
}

extension Duration {
    /// Whole milliseconds, at least 1.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(seconds * 1_000 + attoseconds / 1_000_000_000_000_000, 1)
    }
}
