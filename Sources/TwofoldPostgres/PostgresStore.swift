import Logging
import NIOCore
import PostgresNIO
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// The PostgreSQL store: several daemons on one database (directly or through PgBouncer in
/// transaction mode), secrets sealed as in SQLite (same `Sealer`, same AADs), and group commit for
/// the verify path, whose transaction accepts a code once across all the daemons
/// (PostgresStore+Verify.swift) and detects failovers (PostgresTimeline.swift).
///
/// Opening creates the schema on an empty database (or migrates a v3 one) and checks, before
/// anything is written to an existing one, that its schema is not newer than this code
/// (`StoreError.schemaTooNew`) and that the keyring holds a key the database knows
/// (`StoreError.wrongKey`); then it opens the recovery pepper and registers the keyring's other
/// keys (`KeyCheck`, PostgresSchema+Open.swift). Every operation fails with `StoreError.database`
/// within connectTimeout + statementTimeout when the server cannot be reached, and works again
/// once it can, without reopening. No login reader: the daemon reads with `user(_:)`.
public final class PostgresStore: TwofoldStore {
    let connector: PostgresConnector
    let sealer: Sealer
    /// The recovery-code pepper, opened once (schema v4 keeps it sealed in `twofold_meta`).
    let pepper: SecretBytes
    let logger: Logger
    private let committer: AsyncGroupCommitter
    private let closed = Mutex(false)

    /// Connects and opens (or creates) the schema, sealing with `keys`.
    public convenience init(configuration: PostgresStoreConfiguration, keys: SealingKeys,
                            logger: Logger = Logger(label: "twofold.store")) async throws {
        try await self.init(configuration: configuration, keyring: Keyring(sealing: keys), logger: logger)
    }

    /// Connects and opens (or creates, or migrates) the schema; new secrets are sealed with the
    /// keyring's sealing key, and every member opens what it sealed. `observer` hears of each
    /// group-commit batch and of each reconnect (a pool replaced during an outage).
    public init(configuration: PostgresStoreConfiguration, keyring: Keyring,
                logger: Logger = Logger(label: "twofold.store"), observer: StoreObserver = StoreObserver()) async throws {
        let connector = PostgresConnector(configuration: configuration, logger: logger, onReconnect: observer.reconnected)
        let sealer = Sealer(keyring: keyring)
        let opening: PostgresOpening
        do {
            opening = try await PostgresSchema.open(connector, sealer: sealer)
        } catch {
            // The pool says only that its time ran out: ask the server why, for the operator.
            let error = await Self.explained(error, connector)
            await connector.shutdown()
            if case StoreError.wrongKey = error {
                logger.error("store key check failed: the database knows none of the keys",
                             metadata: ["keys": "\(keyring.members.map(\.id.hex).joined(separator: ","))"])
            } else {
                logger.error("store not opened; database left untouched", metadata: ["error": "\(error)"])
            }
            throw error
        }
        Self.log(opening, logger: logger)
        pepper = opening.pepper
        self.connector = connector
        self.sealer = sealer
        self.logger = logger
        committer = AsyncGroupCommitter(maximumMutations: Self.maximumBatch, observer: observer.batchCommitted) { mutations throws(StoreError) in
            try await Self.applyBatch(mutations, connector: connector, logger: logger)
        }
        logger.debug("store opened", metadata: ["database": "\(configuration.database)"])
    }

    /// Mutations per verify transaction at most (about 64 logins): its users stay locked until it
    /// commits, one round trip per mutation, and other daemons' batches wait for them.
    static let maximumBatch = 128

    /// Several daemons share the database: what one caches from it (the policy) is read again.
    public var isShared: Bool { true }

    /// What the database says of `keyring`, changing nothing (`twofoldd --check-config`): the keys it
    /// knows (every stored check read, v3 or v4) and those a start would register; nil when it holds
    /// no Twofold schema yet. Throws `StoreError.wrongKey` when it knows none of them.
    public static func checkKeys(configuration: PostgresStoreConfiguration, keyring: Keyring) async throws -> (known: [KeyID], toRegister: [KeyID])? {
        let connector = PostgresConnector(configuration: configuration, logger: Logger(label: "twofold.check", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { Task { await connector.shutdown() } }
        let stored: [[UInt8]]?
        do {
            stored = try await connector.withConnection(statements: 2) { connection in
                guard let schema = try await PostgresSchema.read(connection) else { return nil }
                try PostgresSchema.checkVersion(schema.version)
                return try schema.keyChecks()
            }
        } catch {
            throw await explained(error, connector)
        }
        guard let stored else { return nil }
        let known = try KeyCheck.knownMembers(of: keyring, stored: stored)
        return (known, keyring.members.map(\.id).filter { !known.contains($0) })
    }

    /// A stored setting, changing nothing (`twofoldd --check-config` reads the stored policy); nil
    /// when the database holds no Twofold schema yet or not that setting.
    public static func storedSetting(configuration: PostgresStoreConfiguration, key: String) async throws -> String? {
        let connector = PostgresConnector(configuration: configuration, logger: Logger(label: "twofold.check", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { Task { await connector.shutdown() } }
        do {
            return try await connector.withConnection(statements: 2) { connection in
                guard try await PostgresSchema.read(connection) != nil else { return nil }
                return try await connection.run("SELECT value FROM settings WHERE key = \(key)").first?.decode(String.self)
            }
        } catch {
            throw await explained(error, connector)
        }
    }

    /// `error`, or when it is an unreachable server, why: from a connection of its own.
    static func explained(_ error: any Error, _ connector: PostgresConnector) async -> any Error {
        guard case StoreError.unreachable = error, let cause = await connector.diagnose() else { return error }
        return cause
    }

    private static func log(_ opening: PostgresOpening, logger: Logger) {
        if opening.created { logger.info("store schema created", metadata: ["version": "\(PostgresSchema.supported)"]) }
        if let from = opening.migratedFrom {
            logger.info("store schema migrated", metadata: ["from": "\(from)", "to": "\(PostgresSchema.supported)"])
        }
        for id in opening.registered { logger.notice("key registered with the database", metadata: ["key_id": "\(id)"]) }
    }

    /// Number of group-commit batches (verify transactions) committed since opening.
    public var batchesCommitted: Int { committer.batchesCommitted }

    public func commit(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        try checkOpen()
        return try await committer.submit(mutations)
    }

    public func commit(_ mutations: [StoreMutation], completion: @escaping @Sendable (Result<[MutationResult], StoreError>) -> Void) {
        if closed.withLock({ $0 }) {
            completion(.failure(.database("the store is closed")))
            return
        }
        committer.submit(mutations, completion: completion)
    }

    /// Lets the batches already queued finish, then closes every connection.
    public func close() async throws {
        let wasClosed = closed.withLock { closed -> Bool in
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        await committer.close()
        await connector.shutdown()
        logger.debug("store closed")
    }

    // MARK: - Helpers

    func checkOpen() throws {
        if closed.withLock({ $0 }) { throw StoreError.database("the store is closed") }
    }

    /// A read of `statements` statements (each autocommit), bounded in time.
    func read<T: Sendable>(statements: Int = 1, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try checkOpen()
        return try await connector.withConnection(statements: statements, body)
    }

    /// A write transaction of up to about `statements` statements (it may take that many times the
    /// statement timeout).
    @discardableResult
    func write<T: Sendable>(statements: Int = 1, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try checkOpen()
        return try await connector.transaction(statements: statements, body)
    }
}
