import Foundation
import GRDB
import Logging
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, secrets sealed with
/// AES-256-GCM, and group commit for the verify path (concurrent `commit` calls share one transaction).
///
/// Opening checks, before anything is written to an existing database, that its schema is not newer
/// than this code (`StoreError.schemaTooNew`) and that the keyring holds a key the database knows
/// (`StoreError.wrongKey`); then it registers the keyring's other keys (`KeyCheck`).
public final class SQLiteStore: TwofoldStore {
    let pool: DatabasePool
    let sealer: Sealer
    /// The recovery-code pepper, opened once (schema v4 keeps it sealed in `meta`).
    let pepper: SecretBytes
    let logger: Logger
    private let committer: GroupCommitter
    private let closed = Mutex(false)
    private let path: String
    private let readers = Mutex<[DatabaseQueue]>([])
    private let checkpointer: BackgroundCheckpointer

    /// Opens (or creates, mode 0600) the database at `path` with one key, migrating it to the current schema.
    public convenience init(path: String, keys: SealingKeys, logger: Logger = Logger(label: "twofold.store")) throws {
        try self.init(path: path, keyring: Keyring(sealing: keys), logger: logger)
    }

    /// Opens (or creates, mode 0600) the database at `path`, migrating it to the current schema; new
    /// secrets are sealed with the keyring's sealing key, and every member opens what it sealed.
    /// `observer` hears of each group-commit batch.
    public init(path: String, keyring: Keyring, logger: Logger = Logger(label: "twofold.store"), observer: StoreObserver = StoreObserver()) throws {
        let sealer = Sealer(keyring: keyring)
        self.sealer = sealer
        self.logger = logger

        let existing = try Self.prepareFile(path)
        if existing {
            do {
                try Self.precheck(path: path, sealer: sealer)
            } catch {
                logger.error("store not opened; database left untouched", metadata: ["path": "\(path)", "error": "\(error)"])
                throw error
            }
        }

        var config = Configuration()
        config.label = "twofold.store"
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        // Logins read through their loops' own connections (makeLoginReader); the pool's readers
        // serve admin requests only.
        config.maximumReaderCount = 2
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw Self.storeError(error)
        }
        do {
            // GRDB switches the writer to synchronous = NORMAL when it enables WAL: set FULL again and check it.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // The background checkpointer keeps the WAL short; this inline one (inside a commit)
                // is only the safety net, at 10,000 pages (40 MiB) instead of SQLite's 1,000.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
                guard try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2 else {
                    throw StoreError.database("could not set synchronous = FULL")
                }
            }
            pepper = try Self.migrateAndAdmit(pool, sealer: sealer, path: path, logger: logger)
        } catch {
            try? pool.close()
            if case StoreError.wrongKey = error {
                logger.error("store key check failed: the database knows none of the keys", metadata: [
                    "path": "\(path)", "keys": "\(keyring.members.map(\.id.hex).joined(separator: ","))"])
            }
            throw Self.storeError(error)
        }
        self.pool = pool
        self.path = path
        do {
            checkpointer = try BackgroundCheckpointer(path: path)
        } catch {
            try? pool.close()
            throw Self.storeError(error)
        }
        self.committer = GroupCommitter(observer: observer.batchCommitted) { mutations throws(StoreError) in
            do {
                return try pool.write { db in
                    var results: [MutationResult] = []
                    results.reserveCapacity(mutations.count)
                    for mutation in mutations {
                        results.append(try Self.apply(mutation, previous: results.last, db))
                    }
                    return results
                }
            } catch {
                let mapped = Self.storeError(error)
                logger.error("store batch failed", metadata: ["mutations": "\(mutations.count)", "error": "\(mapped)"])
                throw mapped
            }
        }
        logger.debug("store opened", metadata: ["path": "\(path)"])
    }

    /// Migrates the schema, then admits the keyring: it must hold a key the database knows and open
    /// the pepper before the keys it brings are registered. Returns the pepper.
    private static func migrateAndAdmit(_ pool: DatabasePool, sealer: Sealer, path: String, logger: Logger) throws -> SecretBytes {
        let migrator = Schema.migrator(keyCheck: try KeyCheck.seal(with: sealer), sealer: sealer)
        try pool.read { try Schema.checkNotNewer($0) }
        let before = try pool.read { try migrator.appliedMigrations($0) }
        do {
            try migrator.migrate(pool)
        } catch {
            // Another process may have created the schema at the same moment.
            guard try pool.read({ try migrator.hasCompletedMigrations($0) }) else { throw error }
        }
        if before != migrator.migrations {
            logger.info("store schema migrated", metadata: ["path": "\(path)", "from": "\(before.last ?? "empty")", "to": "\(Schema.supported)"])
        }
        let pepper = try pool.read { db in
            try Schema.checkKeys(db, keyring: sealer.keyring, required: true)
            return try Schema.pepper(db, sealer: sealer)
        }
        for id in try pool.write({ try Schema.registerKeys($0, keyring: sealer.keyring) }) {
            logger.notice("key registered with the database", metadata: ["path": "\(path)", "key_id": "\(id)"])
        }
        return pepper
    }

    /// Number of group-commit batches (write transactions of `commit`) committed since opening.
    public var batchesCommitted: Int { committer.batchesCommitted }

    // MARK: - Verify path

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

    public func makeLoginReader() throws -> (any LoginReader)? {
        try checkOpen()
        var config = Configuration()
        config.readonly = true
        config.label = "twofold.store.login-reader"
        // A WAL reader waits only in rare cases (recovery after a crash, a TRUNCATE checkpoint at
        // shutdown). Its caller is an event loop: wait at most a second, then fail (the login gets
        // UNAVAILABLE and the module fails closed) rather than hold every other connection.
        config.busyMode = .timeout(1)
        // A login touches one leaf page per B-tree level; 1 MiB keeps the inner pages of a
        // million-user table cached, and the OS page cache has the rest.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = -1024") }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw Self.storeError(error)
        }
        readers.withLock { $0.append(queue) }
        return SQLiteLoginReader(queue: queue, sealer: sealer, isClosed: { self.closed.withLock { $0 } })
    }

    // MARK: - Recovery codes

    public func replaceRecoveryCodes(user: String, codes: [RecoveryCodeHash]) async throws {
        try await guarded {
            let sealed = try sealCodes(codes, user: user)
            try await pool.write { db in
                guard try Self.factorCount(user: user, db) > 0 else { throw StoreError.notEnrolled(user) }
                try Self.storeCodes(sealed, user: user, db)
            }
        }
    }

    public func recoveryCodes(user: String) async throws -> [(index: Int, hash: RecoveryCodeHash)] {
        try await guarded {
            let sealer = self.sealer
            return try await pool.read { db in try Self.unusedCodes(user: user, sealer: sealer, db) }
        }
    }

    /// The user's unused recovery codes, opened.
    static func unusedCodes(user: String, sealer: Sealer, _ db: Database) throws -> [(index: Int, hash: RecoveryCodeHash)] {
        let rows = try Row.fetchCursor(db, sql: "SELECT idx, sealed FROM recovery_codes WHERE user = ? AND used_at IS NULL ORDER BY idx",
                                       arguments: [user])
        var codes: [(index: Int, hash: RecoveryCodeHash)] = []
        while let row = try rows.next() {
            let index: Int = row[0]
            let blob: Data = row[1]
            codes.append((index, try sealer.openRecovery(Array(blob), user: user, index: index)))
        }
        return codes
    }

    /// Seals codes for indexes 0..<n (outside the write transaction, to keep it short).
    func sealCodes(_ codes: [RecoveryCodeHash], user: String) throws -> [Data] {
        try codes.enumerated().map { index, code in Data(try sealer.sealRecovery(code, user: user, index: index)) }
    }

    static func storeCodes(_ sealed: [Data], user: String, _ db: Database) throws {
        try db.cachedStatement(sql: "DELETE FROM recovery_codes WHERE user = ?").execute(arguments: [user])
        let insert = try db.cachedStatement(sql: "INSERT INTO recovery_codes (user, idx, sealed) VALUES (?, ?, ?)")
        for (index, blob) in sealed.enumerated() {
            try insert.execute(arguments: [user, index, blob])
        }
    }

    // MARK: - Admin

    public func unlock(user: String) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name = ?", arguments: [user])
            }
        }
    }

    public func setRequirement(user: String, _ requirement: RequirementOverride) async throws {
        try await setOverride(user: user, .requirement, requirement.rawValue)
    }

    public func setFactorKinds(user: String, _ kinds: Set<FactorKind>?) async throws {
        try await setOverride(user: user, .factorKinds, FactorKindsColumn.text(kinds))
    }

    public func setSSHKeyRule(user: String, _ rule: SSHKeyRule?) async throws {
        try await setOverride(user: user, .sshKeyRule, SSHKeyRuleColumn.text(rule))
    }

    /// One override column of the user's row, the row made if needed.
    private func setOverride(user: String, _ column: UserOverrideColumn, _ value: String?) async throws {
        let name = column.rawValue
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO users (name, \(name)) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET \(name) = excluded.\(name)",
                               arguments: [user, value])
            }
        }
    }

    public func markFirstRequired(user: String, atMillis: Int64) async throws -> Int64 {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO users (name, first_required) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET first_required = coalesce(users.first_required, excluded.first_required)
                    """, arguments: [user, atMillis])
                guard let stored = try Int64.fetchOne(db, sql: "SELECT first_required FROM users WHERE name = ?", arguments: [user]) else {
                    throw StoreError.database("first_required was not stored")
                }
                return stored
            }
        }
    }

    // MARK: - Settings

    public func setting(_ key: String) async throws -> String? {
        try await guarded {
            try await pool.read { db in
                try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [key])
            }
        }
    }

    public func setSetting(_ key: String, value: String) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """, arguments: [key, value])
            }
        }
    }

    // MARK: - Audit

    public func audit(_ query: AuditQuery) async throws -> [AuditRecord] {
        try await guarded {
            guard query.limit > 0 else { return [] }
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let user = query.user {
                conditions.append("user = ?")
                arguments += [user]
            }
            if let since = query.sinceMillis {
                conditions.append("time >= ?")
                arguments += [since]
            }
            if let outcome = query.outcome {
                conditions.append("outcome = ?")
                arguments += [outcome]
            }
            if let host = query.host {
                conditions.append("host = ?")
                arguments += [host]
            }
            if let action = query.action {
                conditions.append("action = ?")
                arguments += [action]
            }
            arguments += [query.limit]
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let sql = "SELECT \(Self.auditColumns) FROM audit \(whereClause) ORDER BY id DESC LIMIT ?"
            let frozen = arguments
            return try await pool.read { db in try Self.auditRecords(sql: sql, arguments: frozen, db).reversed() }
        }
    }

    static let auditColumns = "id, time, action, user, service, rhost, tty, peer_uid, outcome, reason, host"

    /// The records of a query that selects `auditColumns`, in its order.
    static func auditRecords(sql: String, arguments: StatementArguments, _ db: Database) throws -> [AuditRecord] {
        var records: [AuditRecord] = []
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() {
            records.append(AuditRecord(id: row["id"], timeMillis: row["time"], action: row["action"], user: row["user"],
                                       service: row["service"], rhost: row["rhost"], tty: row["tty"],
                                       peerUID: (row["peer_uid"] as Int64?).flatMap { UInt32(exactly: $0) },
                                       outcome: row["outcome"], reason: row["reason"], host: row["host"]))
        }
        return records
    }

    public func pruneAudit(before beforeMillis: Int64, limit: Int) async throws -> Int {
        try await guarded {
            guard limit > 0 else { return 0 }
            return try await pool.write { db in
                // Oldest first by id (ids grow with time): the scan stops once `limit` old records are
                // found; with fewer, it reads the whole table (~0.1 s per million records).
                try db.execute(sql: """
                    DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? ORDER BY id LIMIT ?)
                    """, arguments: [beforeMillis, limit])
                return db.changesCount
            }
        }
    }

    // MARK: - Lifecycle

    public func close() async throws {
        let wasClosed = closed.withLock { c -> Bool in
            defer { c = true }
            return c
        }
        guard !wasClosed else { return }
        await committer.close()
        checkpointer.stop()
        for reader in readers.withLock({ $0 }) { try? reader.close() }
        do {
            // Fold the WAL into the main file so a stopped store is one self-contained file (best effort:
            // a reader of another process may hold it back; the WAL is then kept and stays valid).
            _ = try? await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try pool.close()
        } catch {
            throw Self.storeError(error)
        }
        logger.debug("store closed")
    }

    /// The writer connection's `PRAGMA synchronous` (2 = FULL), for tests.
    func writerSynchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Waits for `count` more passes of the background checkpointer, for tests.
    func testingWaitForCheckpoints(_ count: Int) -> Bool {
        checkpointer.waitForPasses(count)
    }

    /// The writer connection's `PRAGMA wal_autocheckpoint`, for tests.
    func writerAutocheckpointPages() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? -1 }
    }

    /// Runs raw SQL on the writer, for tests that tamper with rows.
    func testingExecute(_ sql: String) throws {
        try pool.write { db in try db.execute(sql: sql) }
    }

    /// The first column of the first row of raw SQL, as bytes, for tests.
    func testingFetchBlob(_ sql: String) throws -> [UInt8]? {
        try pool.read { db in try Data.fetchOne(db, sql: sql).map { Array($0) } }
    }

    /// Creates a database as an older twofoldd left it (the migrations up to `version`, then
    /// `sql`), for tests that read old stores; returns its recovery pepper (v4 and later).
    static func testingCreate(path: String, keys: SealingKeys, upTo version: String, sql: String) throws -> SecretBytes? {
        let sealer = Sealer(keys: keys)
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try Schema.migrator(keyCheck: try KeyCheck.seal(with: sealer), sealer: sealer).migrate(queue, upTo: version)
        return try queue.write { db in
            try db.execute(sql: sql)
            return try? Schema.pepper(db, sealer: sealer)
        }
    }

    /// The number of rows of a raw SQL count query, for tests.
    func testingCount(_ sql: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    // MARK: - Helpers

    func checkOpen() throws {
        if closed.withLock({ $0 }) { throw StoreError.database("the store is closed") }
    }

    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await body()
        } catch {
            throw Self.storeError(error)
        }
    }

    static func storeError(_ error: any Error) -> StoreError {
        switch error {
        case let error as StoreError:
            return error
        case let error as DatabaseError:
            // SQLite's own message; GRDB leaves statement arguments out of it.
            return .database("SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "unknown")")
        case let error as CryptoError:
            return .database(error.description)
        default:
            return .database(String(describing: type(of: error)))
        }
    }

    /// Creates an empty file with mode 0600 if there is none (SQLite gives its -wal and -shm files the same
    /// mode). Returns true if a database may already exist (non-empty file or WAL).
    private static func prepareFile(_ path: String) throws -> Bool {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if fd >= 0 {
            closeDescriptor(fd)
            return false
        }
        let err = errno
        guard err == EEXIST else { throw StoreError.database("cannot create \(path): \(errorText(err))") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw StoreError.database("cannot stat \(path): \(errorText(errno))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw StoreError.database("\(path) is not a regular file") }
        if st.st_size > 0 { return true }
        var walStat = stat()
        return stat(path + "-wal", &walStat) == 0 && walStat.st_size > 0
    }

    /// What the database at `path` says of `keyring`, read only (`twofoldd --check-config`): the
    /// members it knows and those a start would register; nil when there is no database yet.
    /// Throws `StoreError.wrongKey` when it knows none (the daemon would refuse to start).
    package static func checkKeys(path: String, keyring: Keyring) throws -> (known: [KeyID], toRegister: [KeyID])? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_size > 0 else { return nil }
        var config = Configuration()
        config.readonly = true
        config.label = "twofold.store.key-check"
        config.busyMode = .timeout(10)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            return try queue.read { db in
                try Schema.checkNotNewer(db)
                let known = try Schema.checkKeys(db, keyring: keyring, required: true)
                return (known, keyring.members.map(\.id).filter { !known.contains($0) })
            }
        } catch {
            throw storeError(error)
        }
    }

    /// A stored setting of the database at `path`, read only (`twofoldd --check-config` reads the
    /// stored policy); nil when the database or the setting does not exist.
    package static func storedSetting(path: String, key: String) throws -> String? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_size > 0 else { return nil }
        var config = Configuration()
        config.readonly = true
        config.label = "twofold.store.setting-check"
        config.busyMode = .timeout(10)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            return try queue.read { db in try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [key]) }
        } catch {
            throw storeError(error)
        }
    }

    /// Read-only checks of an existing database, before any connection that could write to it is opened.
    private static func precheck(path: String, sealer: Sealer) throws {
        var config = Configuration()
        config.readonly = true
        config.label = "twofold.store.precheck"
        config.busyMode = .timeout(10)
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            try queue.read { db in
                try Schema.checkNotNewer(db)
                try Schema.checkKeys(db, keyring: sealer.keyring, required: false)
            }
        } catch {
            throw storeError(error)
        }
    }
}

/// The login read on a connection of its own, used synchronously by one thread (an event loop):
/// no executor hop and no shared reader pool to wait for. Each read is a SELECT in autocommit mode
/// (the user's row and factors; then, for a known user, its contacts, login code and keys), so it sees
/// every transaction committed before it started.
final class SQLiteLoginReader: LoginReader {
    private let queue: DatabaseQueue
    private let sealer: Sealer
    private let isClosed: @Sendable () -> Bool

    init(queue: DatabaseQueue, sealer: Sealer, isClosed: @escaping @Sendable () -> Bool) {
        self.queue = queue
        self.sealer = sealer
        self.isClosed = isClosed
    }

    func loginRecord(_ name: String) throws -> UserRecord? {
        if isClosed() { throw StoreError.database("the store is closed") }
        do {
            return try queue.inDatabase { db in
                let rows = try Row.fetchCursor(db.cachedStatement(sql: SQLiteStore.loginSQL), arguments: [name])
                guard var record = try SQLiteStore.decodeUsers(rows, sealer: sealer, countsCodes: false).first else { return nil }
                // The contacts, the login code and the keys: a second statement, only for a known
                // user. A commit between the two may show a code or key counter newer than the
                // factors read; the verify path decides on what it finds when it commits, so that
                // is harmless.
                try SQLiteStore.attachRelated(&record, db)
                return record
            }
        } catch {
            throw SQLiteStore.storeError(error)
        }
    }
}

private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
