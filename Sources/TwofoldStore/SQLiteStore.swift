import Foundation
import GRDB
import Logging
import Synchronization
import TwofoldCore
import TwofoldCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, secrets sealed with
/// AES-256-GCM, and group commit for the verify path (concurrent `commit` calls share one transaction).
///
/// Opening checks, before anything is written to an existing database, that its schema is not newer
/// than this code (`StoreError.schemaTooNew`) and that the key opens its key check (`StoreError.wrongKey`).
public final class SQLiteStore: TwofoldStore {
    private let pool: DatabasePool
    private let sealer: Sealer
    private let logger: Logger
    private let committer: GroupCommitter
    private let closed = Mutex(false)
    private let path: String
    private let readers = Mutex<[DatabaseQueue]>([])
    private let checkpointer: BackgroundCheckpointer

    /// Opens (or creates, mode 0600) the database at `path`, migrating it to the current schema.
    public init(path: String, keys: SealingKeys, logger: Logger = Logger(label: "twofold.store")) throws {
        let sealer = Sealer(keys: keys)
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
            var plain = Schema.keyCheckPlaintext
            defer { Crypto.wipe(&plain) }
            let keyCheck = try plain.withUnsafeBytes { try sealer.seal($0, .keycheck, user: Schema.keyCheckOwner) }
            let migrator = Schema.migrator(keyCheck: keyCheck)
            try pool.read { try Schema.checkNotNewer($0) }
            let before = try pool.read { try migrator.appliedMigrations($0) }
            do {
                try migrator.migrate(pool)
            } catch {
                // Another process may have created the schema at the same moment.
                guard try pool.read({ try migrator.hasCompletedMigrations($0) }) else { throw error }
            }
            try pool.read { try Schema.checkKey($0, sealer: sealer, required: true) }
            if before != migrator.migrations {
                logger.info("store schema migrated", metadata: ["path": "\(path)", "from": "\(before.last ?? "empty")", "to": "\(Schema.supported)"])
            }
        } catch {
            try? pool.close()
            if case StoreError.wrongKey = error {
                logger.error("store key check failed: wrong key for this database", metadata: ["path": "\(path)"])
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
        self.committer = GroupCommitter { mutations throws(StoreError) in
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

    /// Applies one mutation; `previous` is the result of the one before it (for `auditAttempt`).
    private static func apply(_ mutation: StoreMutation, previous: MutationResult?, _ db: Database) throws -> MutationResult {
        switch mutation {
        case let .acceptTOTP(user, step, newVerify, atMillis, policy):
            // One statement in the common case: the throttle condition is part of the UPDATE, and
            // only an attempt it refuses reads the row to learn why.
            try db.cachedStatement(sql: """
                UPDATE users SET last_step = ?, drift = ?, last_offset = ?,
                    failures = 0, not_before = NULL, locked_until = NULL, last_success = ?
                WHERE name = ? AND status = 'active' AND (last_step IS NULL OR last_step < ?)
                    AND (locked_until IS NULL OR locked_until <= ?) AND (not_before IS NULL OR not_before <= ?)
                """).execute(arguments: [step, newVerify.drift, newVerify.lastOffset, atMillis, user, step, atMillis, atMillis])
            return try acceptOutcome(user: user, step: step, isHOTP: false, atMillis: atMillis, policy: policy, db)

        case let .acceptHOTP(user, counter, atMillis, policy):
            guard counter < UInt64(Int64.max) else { return .conflict }
            let value = Int64(counter)
            try db.cachedStatement(sql: """
                UPDATE users SET counter = ?, failures = 0, not_before = NULL, locked_until = NULL, last_success = ?
                WHERE name = ? AND status = 'active' AND counter <= ?
                    AND (locked_until IS NULL OR locked_until <= ?) AND (not_before IS NULL OR not_before <= ?)
                """).execute(arguments: [value + 1, atMillis, user, value, atMillis, atMillis])
            return try acceptOutcome(user: user, step: value, isHOTP: true, atMillis: atMillis, policy: policy, db)

        case let .consumeStep(user, step, isHOTP):
            try useUpStep(user: user, step: step, isHOTP: isHOTP, db)
            return db.changesCount == 1 ? .applied : .conflict

        case let .recordFailure(user, atMillis, policy):
            guard let current = try throttleState(user: user, db) else { return .conflict }
            let next = Throttle.afterFailure(current, nowMillis: atMillis, policy: policy)
            try storeThrottle(next, user: user, db)
            return .appliedFailure(next)

        case let .consumeRecoveryCode(user, index, atMillis, policy):
            if let refused = try refuseIfThrottled(user: user, atMillis: atMillis, policy: policy, db) { return refused }
            try db.cachedStatement(sql: "UPDATE recovery_codes SET used_at = ? WHERE user = ? AND idx = ? AND used_at IS NULL")
                .execute(arguments: [atMillis, user, index])
            guard db.changesCount == 1 else { return .conflict }
            // A recovery code is a successful login: reset the throttle and record it.
            try db.cachedStatement(sql: """
                UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL, last_success = ? WHERE name = ?
                """).execute(arguments: [atMillis, user])
            return .applied

        case let .audit(record):
            try insertAudit(record, db)
            return .applied

        case let .auditAttempt(record):
            try insertAudit(record.resolved(after: previous), db)
            return .applied
        }
    }

    /// After an accepting UPDATE: applied, or why not. A refusal for a lock or delay in force still
    /// uses up the step (a right code must not work later); anything else is a replay (or no such user).
    private static func acceptOutcome(user: String, step: Int64, isHOTP: Bool, atMillis: Int64, policy: ThrottlePolicy,
                                      _ db: Database) throws -> MutationResult {
        if db.changesCount == 1 { return .applied }
        guard let refused = try refuseIfThrottled(user: user, atMillis: atMillis, policy: policy, db) else { return .conflict }
        try useUpStep(user: user, step: step, isHOTP: isHOTP, db)
        return refused
    }

    /// The lock and delay decided where the attempt commits, from the state this transaction reads:
    /// nil to go on, or the refusal (counted as a failure).
    private static func refuseIfThrottled(user: String, atMillis: Int64, policy: ThrottlePolicy, _ db: Database) throws -> MutationResult? {
        guard let current = try throttleState(user: user, db) else { return nil }
        switch Throttle.commitDecision(current, nowMillis: atMillis, policy: policy) {
        case .proceed:
            return nil
        case .refuse(let next):
            if next != current { try storeThrottle(next, user: user, db) }
            return .throttled(next)
        }
    }

    private static func throttleState(user: String, _ db: Database) throws -> ThrottleState? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT failures, not_before, locked_until FROM users WHERE name = ?"),
                                         arguments: [user]) else { return nil }
        return ThrottleState(failures: row[0], notBeforeMillis: row[1], lockedUntilMillis: row[2])
    }

    private static func storeThrottle(_ state: ThrottleState, user: String, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE users SET failures = ?, not_before = ?, locked_until = ? WHERE name = ?")
            .execute(arguments: [state.failures, state.notBeforeMillis, state.lockedUntilMillis, user])
    }

    /// Moves the replay watermark past `step` (TOTP) or `counter` (HOTP) and nothing else.
    private static func useUpStep(user: String, step: Int64, isHOTP: Bool, _ db: Database) throws {
        if isHOTP {
            guard step < Int64.max else { return }
            try db.cachedStatement(sql: "UPDATE users SET counter = ? WHERE name = ? AND status = 'active' AND counter <= ?")
                .execute(arguments: [step + 1, user, step])
        } else {
            try db.cachedStatement(sql: """
                UPDATE users SET last_step = ? WHERE name = ? AND status = 'active' AND (last_step IS NULL OR last_step < ?)
                """).execute(arguments: [step, user, step])
        }
    }

    private static func insertAudit(_ r: AuditRecord, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit (time, action, user, service, rhost, tty, peer_uid, outcome, reason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [r.timeMillis, r.action, r.user, r.service, r.rhost, r.tty,
                                     r.peerUID.map { Int64($0) }, r.outcome, r.reason])
    }

    // MARK: - Users

    /// The columns of a user record, in the order `decodeUser` reads them by index; the sealed
    /// secrets last (21, 22).
    private static let stateColumns = """
        name, status, method, algorithm, digits, period, pending_method, pending_algorithm, pending_digits,
        pending_period, last_step, counter, drift, last_offset, failures, not_before, locked_until, requirement,
        enrolled_at, last_success, first_required
        """
    private static let recordColumns = stateColumns + ", secret, pending_secret"
    /// The count of unused recovery codes (index 23).
    private static let codesLeftColumn = """
        (SELECT count(*) FROM recovery_codes r WHERE r.user = users.name AND r.used_at IS NULL) AS codes_left
        """
    /// For listings: the sealed secrets are not even read (NULL in their places).
    private static let listColumns = stateColumns + ", NULL, NULL, " + codesLeftColumn
    static let loginSQL = "SELECT \(recordColumns) FROM users WHERE name = ?"

    public func user(_ name: String) async throws -> UserRecord? {
        try await guarded {
            let sealer = self.sealer
            // The hot path of every login: a cached statement, so SQLite does not compile (and GRDB's
            // authorizer does not inspect) the query on each login.
            return try await pool.read { db in
                guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT \(Self.recordColumns), \(Self.codesLeftColumn) FROM users WHERE name = ?"),
                                                 arguments: [name]) else { return nil }
                return try Self.decodeUser(row, sealer: sealer, countsCodes: true)
            }
        }
    }

    public func pendingEnrollment(user: String) async throws -> (secret: SecretBytes, parameters: OTPParameters)? {
        try await guarded {
            let sealer = self.sealer
            return try await pool.read { db in
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT pending_secret, pending_method, pending_algorithm, pending_digits, pending_period
                    FROM users WHERE name = ?
                    """, arguments: [user]),
                      let blob = row["pending_secret"] as Data?
                else { return nil }
                return (try sealer.open(Array(blob), .pending, user: user), try Self.parameters(row, at: 1, user: user))
            }
        }
    }

    public func listUsers(after afterName: String?, limit: Int) async throws -> [UserRecord] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                let rows: RowCursor
                if let afterName {
                    rows = try Row.fetchCursor(db, sql: "SELECT \(Self.listColumns) FROM users WHERE name > ? ORDER BY name LIMIT ?",
                                               arguments: [afterName, limit])
                } else {
                    rows = try Row.fetchCursor(db, sql: "SELECT \(Self.listColumns) FROM users ORDER BY name LIMIT ?", arguments: [limit])
                }
                var users: [UserRecord] = []
                while let row = try rows.next() {
                    users.append(try Self.decodeUser(row, sealer: nil, countsCodes: true))
                }
                return users
            }
        }
    }

    /// Opens the sealed secret at `column`; a missing one is a corrupt row.
    private static func openSecret(_ row: Row, column: Int, purpose: SealPurpose, sealer: Sealer, user: String) throws -> SecretBytes {
        guard let blob = row[column] as Data? else {
            throw StoreError.corruptRecord(user: user, reason: "\(purpose == .secret ? "active" : "pending") enrollment without a secret")
        }
        return try sealer.open(Array(blob), purpose, user: user)
    }

    /// Builds a record from a row of `recordColumns` (and `codes_left` when `countsCodes`), reading
    /// columns by index; opens the secret when `sealer` is given.
    static func decodeUser(_ row: Row, sealer: Sealer?, countsCodes: Bool) throws -> UserRecord {
        let name: String = row[0]
        var record = UserRecord(name: name)
        switch row[1] as String? {
        case nil:
            break
        case "active"?:
            record.status = .active
            record.parameters = try parameters(row, at: 2, user: name)
            if let sealer { record.secret = try openSecret(row, column: 21, purpose: .secret, sealer: sealer, user: name) }
        case "pending"?:
            record.status = .pending
            record.parameters = try parameters(row, at: 6, user: name)
            if let sealer { record.secret = try openSecret(row, column: 22, purpose: .pending, sealer: sealer, user: name) }
        case let other?:
            throw StoreError.corruptRecord(user: name, reason: "unknown status '\(other)'")
        }
        record.verify = VerifyState(lastStep: row[10], counter: UInt64(bitPattern: row[11] as Int64), drift: row[12], lastOffset: row[13])
        record.throttle = ThrottleState(failures: row[14], notBeforeMillis: row[15], lockedUntilMillis: row[16])
        let requirement: String = row[17]
        guard let override = RequirementOverride(rawValue: requirement) else {
            throw StoreError.corruptRecord(user: name, reason: "unknown requirement '\(requirement)'")
        }
        record.requirement = override
        record.enrolledAtMillis = row[18]
        record.lastSuccessMillis = row[19]
        record.firstRequiredMillis = row[20]
        if countsCodes { record.recoveryCodesLeft = row[23] }
        return record
    }

    /// OTP parameters from the four columns method, algorithm, digits, period starting at `index`.
    private static func parameters(_ row: Row, at index: Int, user: String) throws -> OTPParameters {
        guard let methodText = row[index] as String?, let method = OTPMethod(rawValue: methodText),
              let algorithmText = row[index + 1] as String?, let algorithm = HashAlgorithm(rawValue: algorithmText),
              let digits = row[index + 2] as Int?, let period = row[index + 3] as Int?
        else {
            throw StoreError.corruptRecord(user: user, reason: "missing or unknown OTP parameters")
        }
        return OTPParameters(method: method, algorithm: algorithm, digits: digits, period: period)
    }

    // MARK: - Enrollment

    public func beginEnrollment(user: String, secret: SecretBytes, parameters: OTPParameters, atMillis: Int64) async throws {
        try await guarded {
            let sealed = try sealer.seal(secret, .pending, user: user)
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO users (name, status, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period)
                    VALUES (?, 'pending', ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET
                        status = CASE WHEN users.status = 'active' THEN 'active' ELSE 'pending' END,
                        pending_secret = excluded.pending_secret, pending_method = excluded.pending_method,
                        pending_algorithm = excluded.pending_algorithm, pending_digits = excluded.pending_digits,
                        pending_period = excluded.pending_period
                    """, arguments: [user, Data(sealed), parameters.method.rawValue, parameters.algorithm.rawValue,
                                     parameters.digits, parameters.period])
            }
        }
    }

    public func activateEnrollment(user: String, recoveryCodes: [RecoveryCodeHash], verify: VerifyState, atMillis: Int64) async throws {
        try await guarded {
            let sealer = self.sealer
            let codes = try sealCodes(recoveryCodes, user: user)
            try await pool.write { db in
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT pending_secret, pending_method, pending_algorithm, pending_digits, pending_period
                    FROM users WHERE name = ?
                    """, arguments: [user]),
                      let pendingBlob = row["pending_secret"] as Data?
                else {
                    throw StoreError.notEnrolled(user)
                }
                let parameters = try Self.parameters(row, at: 1, user: user)
                let secret = try sealer.open(Array(pendingBlob), .pending, user: user)
                let sealed = try sealer.seal(secret, .secret, user: user)
                try db.execute(sql: """
                    UPDATE users SET status = 'active', method = ?, algorithm = ?, digits = ?, period = ?, secret = ?,
                        pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL, pending_digits = NULL,
                        pending_period = NULL, last_step = ?, counter = ?, drift = ?, last_offset = ?,
                        failures = 0, not_before = NULL, locked_until = NULL, enrolled_at = ?
                    WHERE name = ?
                    """, arguments: [parameters.method.rawValue, parameters.algorithm.rawValue, parameters.digits, parameters.period,
                                     Data(sealed), verify.lastStep, Int64(bitPattern: verify.counter), verify.drift,
                                     verify.lastOffset, atMillis, user])
                try Self.storeCodes(codes, user: user, db)
            }
        }
    }

    public func importEnrollment(user: String, secret: SecretBytes, parameters: OTPParameters, verify: VerifyState,
                                 recoveryCodes: [RecoveryCodeHash], atMillis: Int64) async throws {
        try await importEnrollments([EnrollmentImportRecord(user: user, secret: secret, parameters: parameters, verify: verify,
                                                            recoveryCodes: recoveryCodes, atMillis: atMillis)])
    }

    public func importEnrollments(_ imports: [EnrollmentImportRecord]) async throws {
        try await guarded {
            guard !imports.isEmpty else { return }
            // Seal outside the write transaction, to keep it short.
            let sealed = try imports.map { item in
                (item, Data(try sealer.seal(item.secret, .secret, user: item.user)), try sealCodes(item.recoveryCodes, user: item.user))
            }
            try await pool.write { db in
                let upsert = try db.cachedStatement(sql: """
                    INSERT INTO users (name, status, method, algorithm, digits, period, secret, last_step, counter, drift,
                        last_offset, enrolled_at)
                    VALUES (?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET
                        status = 'active', method = excluded.method, algorithm = excluded.algorithm,
                        digits = excluded.digits, period = excluded.period, secret = excluded.secret,
                        pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL, pending_digits = NULL,
                        pending_period = NULL, last_step = excluded.last_step, counter = excluded.counter,
                        drift = excluded.drift, last_offset = excluded.last_offset,
                        failures = 0, not_before = NULL, locked_until = NULL, enrolled_at = excluded.enrolled_at
                    """)
                for (item, secret, codes) in sealed {
                    let p = item.parameters, v = item.verify
                    try upsert.execute(arguments: [item.user, p.method.rawValue, p.algorithm.rawValue, p.digits, p.period, secret,
                                                   v.lastStep, Int64(bitPattern: v.counter), v.drift, v.lastOffset, item.atMillis])
                    try Self.storeCodes(codes, user: item.user, db)
                }
            }
        }
    }

    // MARK: - Recovery codes

    public func replaceRecoveryCodes(user: String, codes: [RecoveryCodeHash]) async throws {
        try await guarded {
            let sealed = try sealCodes(codes, user: user)
            try await pool.write { db in
                guard try String.fetchOne(db, sql: "SELECT status FROM users WHERE name = ?", arguments: [user]) == "active" else {
                    throw StoreError.notEnrolled(user)
                }
                try Self.storeCodes(sealed, user: user, db)
            }
        }
    }

    public func recoveryCodes(user: String) async throws -> [(index: Int, hash: RecoveryCodeHash)] {
        try await guarded {
            let sealer = self.sealer
            return try await pool.read { db in
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
        }
    }

    /// Seals codes for indexes 0..<n (outside the write transaction, to keep it short).
    private func sealCodes(_ codes: [RecoveryCodeHash], user: String) throws -> [Data] {
        try codes.enumerated().map { index, code in Data(try sealer.sealRecovery(code, user: user, index: index)) }
    }

    private static func storeCodes(_ sealed: [Data], user: String, _ db: Database) throws {
        try db.cachedStatement(sql: "DELETE FROM recovery_codes WHERE user = ?").execute(arguments: [user])
        let insert = try db.cachedStatement(sql: "INSERT INTO recovery_codes (user, idx, sealed) VALUES (?, ?, ?)")
        for (index, blob) in sealed.enumerated() {
            try insert.execute(arguments: [user, index, blob])
        }
    }

    // MARK: - Admin

    public func revoke(user: String) async throws -> Bool {
        try await guarded {
            try await pool.write { db in
                let status = try String.fetchOne(db, sql: "SELECT status FROM users WHERE name = ?", arguments: [user])
                try db.execute(sql: "DELETE FROM recovery_codes WHERE user = ?", arguments: [user])
                let hadCodes = db.changesCount > 0
                guard status != nil || hadCodes else { return false }
                try db.execute(sql: """
                    UPDATE users SET status = NULL, method = NULL, algorithm = NULL, digits = NULL, period = NULL, secret = NULL,
                        pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL, pending_digits = NULL,
                        pending_period = NULL, last_step = NULL, counter = 0, drift = 0, last_offset = NULL, enrolled_at = NULL
                    WHERE name = ?
                    """, arguments: [user])
                return true
            }
        }
    }

    public func unlock(user: String) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name = ?", arguments: [user])
            }
        }
    }

    public func setRequirement(user: String, _ requirement: RequirementOverride) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO users (name, requirement) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET requirement = excluded.requirement
                    """, arguments: [user, requirement.rawValue])
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
            arguments += [query.limit]
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            let sql = """
                SELECT id, time, action, user, service, rhost, tty, peer_uid, outcome, reason FROM audit
                \(whereClause) ORDER BY id DESC LIMIT ?
                """
            let frozen = arguments
            return try await pool.read { db in
                var records: [AuditRecord] = []
                let rows = try Row.fetchCursor(db, sql: sql, arguments: frozen)
                while let row = try rows.next() {
                    records.append(AuditRecord(id: row["id"], timeMillis: row["time"], action: row["action"], user: row["user"],
                                               service: row["service"], rhost: row["rhost"], tty: row["tty"],
                                               peerUID: (row["peer_uid"] as Int64?).flatMap { UInt32(exactly: $0) },
                                               outcome: row["outcome"], reason: row["reason"]))
                }
                return records.reversed()
            }
        }
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

    /// The number of rows of a raw SQL count query, for tests.
    func testingCount(_ sql: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    // MARK: - Helpers

    private func checkOpen() throws {
        if closed.withLock({ $0 }) { throw StoreError.database("the store is closed") }
    }

    private func guarded<T>(_ body: () async throws -> T) async throws -> T {
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
                try Schema.checkKey(db, sealer: sealer, required: false)
            }
        } catch {
            throw storeError(error)
        }
    }
}

/// The login read on a connection of its own, used synchronously by one thread (an event loop):
/// no executor hop and no shared reader pool to wait for. Each read is a single SELECT in
/// autocommit mode, so it sees every transaction committed before it started.
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
                guard let row = try Row.fetchOne(db.cachedStatement(sql: SQLiteStore.loginSQL), arguments: [name]) else { return nil }
                return try SQLiteStore.decodeUser(row, sealer: sealer, countsCodes: false)
            }
        } catch {
            throw SQLiteStore.storeError(error)
        }
    }
}

private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}
