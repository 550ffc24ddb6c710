import Foundation
import GRDB
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Users and their factors: reading them (one statement per user, a row per factor), enrolling,
/// importing, removing. Secrets are sealed for (user, factor) outside the write transactions.
extension SQLiteStore {
    /// The user's columns (0...9), then the factor's (10...20), then its sealed secret (21).
    private static let userColumns = """
        u.name, u.pending_name, u.failures, u.not_before, u.locked_until, u.requirement, u.last_success, u.first_required,
        u.factor_kinds, u.ssh_key_rule
        """
    private static let factorColumns = """
        f.name, f.kind, f.algorithm, f.digits, f.period, f.last_step, f.counter, f.drift, f.last_offset, f.added_at, f.last_used
        """
    /// The count of unused recovery codes (index 22).
    private static let codesLeftColumn = """
        (SELECT count(*) FROM recovery_codes r WHERE r.user = u.name AND r.used_at IS NULL)
        """
    private static let fromUsers = "FROM users u LEFT JOIN factors f ON f.user = u.name"
    /// The login's one read: the user's row and every factor's, in name order (the primary key's).
    static let loginSQL = "SELECT \(userColumns), \(factorColumns), f.secret \(fromUsers) WHERE u.name = ?"
    static let userSQL = "SELECT \(userColumns), \(factorColumns), f.secret, \(codesLeftColumn) \(fromUsers) WHERE u.name = ?"
    /// Listings do not even read the sealed secrets.
    private static let listSQL = "SELECT \(userColumns), \(factorColumns), NULL, \(codesLeftColumn) \(fromUsers)"

    public func user(_ name: String) async throws -> UserRecord? {
        try await guarded {
            let sealer = self.sealer
            return try await pool.read { db in
                let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.userSQL), arguments: [name])
                guard var record = try Self.decodeUsers(rows, sealer: sealer, countsCodes: true).first else { return nil }
                try Self.attachRelated(&record, db)
                return record
            }
        }
    }

    public func listUsers(after afterName: String?, limit: Int) async throws -> [UserRecord] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                let page = "SELECT name FROM users WHERE name > ? ORDER BY name LIMIT ?"
                let rows = try Row.fetchCursor(db, sql: "\(Self.listSQL) WHERE u.name IN (\(page)) ORDER BY u.name, f.name",
                                               arguments: [afterName ?? "", limit])
                var records = try Self.decodeUsers(rows, sealer: nil, countsCodes: true)
                try Self.attachContacts(&records, db)
                try Self.attachKeys(&records, db)
                return records
            }
        }
    }

    /// Groups rows (a user's rows are consecutive) into records, opening secrets when `sealer` is given.
    static func decodeUsers(_ rows: RowCursor, sealer: Sealer?, countsCodes: Bool) throws -> [UserRecord] {
        var users: [UserRecord] = []
        while let row = try rows.next() {
            let name: String = row[0]
            if users.last?.name != name { users.append(try decodeUser(row, countsCodes: countsCodes)) }
            guard row[10] as String? != nil else { continue }
            let factor = try decodeFactor(row, user: name, sealer: sealer)
            users[users.count - 1].factors.append(factor)
            if let used = factor.lastUsedMillis, used > users[users.count - 1].lastSuccessMillis ?? .min {
                users[users.count - 1].lastSuccessMillis = used
            }
        }
        return users
    }

    private static func decodeUser(_ row: Row, countsCodes: Bool) throws -> UserRecord {
        let name: String = row[0]
        let requirement: String = row[5]
        guard let override = RequirementOverride(rawValue: requirement) else {
            throw StoreError.corruptRecord(user: name, reason: "unknown requirement '\(requirement)'")
        }
        var kinds: Set<FactorKind>?
        if let text = row[8] as String? {
            let parsed = text.split(separator: ",").map { FactorKind(rawValue: String($0)) }
            guard !parsed.isEmpty, !parsed.contains(nil) else { throw StoreError.corruptRecord(user: name, reason: "unknown factor kinds '\(text)'") }
            kinds = Set(parsed.compactMap { $0 })
        }
        return UserRecord(name: name, pendingFactor: row[1],
                          throttle: ThrottleState(failures: row[2], notBeforeMillis: row[3], lockedUntilMillis: row[4]),
                          requirement: override, lastSuccessMillis: row[6], recoveryCodesLeft: countsCodes ? row[22] : 0,
                          firstRequiredMillis: row[7], factorKinds: kinds,
                          sshKeyRule: try SSHKeyRuleColumn.rule(row[9], user: name))
    }

    private static func decodeFactor(_ row: Row, user: String, sealer: Sealer?) throws -> FactorRecord {
        let name: String = row[10]
        var factor = FactorRecord(name: name, parameters: try parameters(row, at: 11, user: user),
                                  verify: VerifyState(lastStep: row[15], counter: UInt64(bitPattern: row[16] as Int64),
                                                      drift: row[17], lastOffset: row[18]),
                                  addedAtMillis: row[19], lastUsedMillis: row[20])
        if let sealer {
            guard let blob = row[21] as Data? else { throw StoreError.corruptRecord(user: user, reason: "factor '\(name)' without a secret") }
            factor.secret = try sealer.open(Array(blob), .factor, user: user, factor: name)
        }
        return factor
    }

    /// OTP parameters from the four columns kind (method), algorithm, digits, period starting at `index`.
    static func parameters(_ row: Row, at index: Int, user: String) throws -> OTPParameters {
        guard let methodText = row[index] as String?, let method = OTPMethod(rawValue: methodText),
              let algorithmText = row[index + 1] as String?, let algorithm = HashAlgorithm(rawValue: algorithmText),
              let digits = row[index + 2] as Int?, let period = row[index + 3] as Int?
        else {
            throw StoreError.corruptRecord(user: user, reason: "missing or unknown OTP parameters")
        }
        return OTPParameters(method: method, algorithm: algorithm, digits: digits, period: period)
    }

    // MARK: - Enrollment

    public func beginEnrollment(user: String, factor: String, secret: SecretBytes, parameters: OTPParameters, atMillis: Int64) async throws {
        try await guarded {
            let sealed = try sealer.seal(secret, .pendingFactor, user: user, factor: factor)
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT INTO users (name, pending_name, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET
                        pending_name = excluded.pending_name, pending_secret = excluded.pending_secret,
                        pending_method = excluded.pending_method, pending_algorithm = excluded.pending_algorithm,
                        pending_digits = excluded.pending_digits, pending_period = excluded.pending_period
                    """, arguments: [user, factor, Data(sealed), parameters.method.rawValue, parameters.algorithm.rawValue,
                                     parameters.digits, parameters.period])
            }
        }
    }

    public func pendingEnrollment(user: String) async throws -> PendingEnrollment? {
        try await guarded {
            let sealer = self.sealer
            return try await pool.read { db in try Self.pending(user: user, sealer: sealer, db) }
        }
    }

    private static func pending(user: String, sealer: Sealer, _ db: Database) throws -> PendingEnrollment? {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT pending_name, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period
            FROM users WHERE name = ?
            """, arguments: [user]),
              let name = row[0] as String?, let blob = row[1] as Data?
        else { return nil }
        return PendingEnrollment(factor: name, secret: try sealer.open(Array(blob), .pendingFactor, user: user, factor: name),
                                 parameters: try parameters(row, at: 2, user: user))
    }

    public func activateEnrollment(user: String, recoveryCodes: [RecoveryCodeHash]?, verify: VerifyState, atMillis: Int64) async throws {
        try await guarded {
            let sealer = self.sealer
            let codes = try recoveryCodes.map { try sealCodes($0, user: user) }
            try await pool.write { db in
                guard let pending = try Self.pending(user: user, sealer: sealer, db) else { throw StoreError.notEnrolled(user) }
                let sealed = try sealer.seal(pending.secret, .factor, user: user, factor: pending.factor)
                try Self.upsertFactor(user: user, name: pending.factor, parameters: pending.parameters, sealed: Data(sealed),
                                      verify: verify, atMillis: atMillis, db)
                try db.execute(sql: """
                    UPDATE users SET pending_name = NULL, pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL,
                        pending_digits = NULL, pending_period = NULL, failures = 0, not_before = NULL, locked_until = NULL
                    WHERE name = ?
                    """, arguments: [user])
                if let codes { try Self.storeCodes(codes, user: user, db) }
            }
        }
    }

    public func importEnrollment(_ record: EnrollmentImportRecord) async throws {
        try await importEnrollments([record])
    }

    public func importEnrollments(_ imports: [EnrollmentImportRecord]) async throws {
        try await guarded {
            guard !imports.isEmpty else { return }
            // Seal outside the write transaction, to keep it short.
            let sealed = try imports.map { item in
                (item, Data(try sealer.seal(item.secret, .factor, user: item.user, factor: item.factor)),
                 item.recoveryCodes.isEmpty ? nil : try sealCodes(item.recoveryCodes, user: item.user))
            }
            try await pool.write { db in
                // A pending enrollment of the same name would replace the imported factor: it goes.
                let user = try db.cachedStatement(sql: """
                    INSERT INTO users (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET
                        failures = 0, not_before = NULL, locked_until = NULL,
                        pending_name = CASE WHEN users.pending_name = ? THEN NULL ELSE users.pending_name END,
                        pending_secret = CASE WHEN users.pending_name = ? THEN NULL ELSE users.pending_secret END
                    """)
                for (item, secret, codes) in sealed {
                    try user.execute(arguments: [item.user, item.factor, item.factor])
                    try Self.upsertFactor(user: item.user, name: item.factor, parameters: item.parameters, sealed: secret,
                                          verify: item.verify, atMillis: item.atMillis, db)
                    if let codes { try Self.storeCodes(codes, user: item.user, db) }
                }
            }
        }
    }

    /// Adds the factor, or replaces the one of the same name (its replay state and last use start over).
    static func upsertFactor(user: String, name: String, parameters p: OTPParameters, sealed: Data, verify v: VerifyState,
                                     atMillis: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, last_step, counter, drift, last_offset, added_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (user, name) DO UPDATE SET
                kind = excluded.kind, algorithm = excluded.algorithm, digits = excluded.digits, period = excluded.period,
                secret = excluded.secret, last_step = excluded.last_step, counter = excluded.counter, drift = excluded.drift,
                last_offset = excluded.last_offset, added_at = excluded.added_at, last_used = NULL
            """).execute(arguments: [user, name, p.method.rawValue, p.algorithm.rawValue, p.digits, p.period, sealed,
                                     v.lastStep, Int64(bitPattern: v.counter), v.drift, v.lastOffset, atMillis])
    }

    // MARK: - Removal

    public func removeFactor(user: String, name: String) async throws -> Bool {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM factors WHERE user = ? AND name = ?", arguments: [user, name])
                guard db.changesCount == 1 else { return false }
                // A verified contact or a key is a second factor too: the recovery codes stay while one is left.
                if try Self.factorCount(user: user, db) == 0 { try Self.clearEnrollment(user: user, db) }
                return true
            }
        }
    }

    public func revoke(user: String) async throws -> Bool {
        try await guarded {
            try await pool.write { db in
                var removed = try Self.clearEnrollment(user: user, db)
                try db.execute(sql: "DELETE FROM contacts WHERE user = ?", arguments: [user])
                removed = removed || db.changesCount > 0
                try db.execute(sql: "DELETE FROM fido2_keys WHERE user = ?", arguments: [user])
                removed = removed || db.changesCount > 0
                try db.execute(sql: "DELETE FROM ssh_keys WHERE user = ?", arguments: [user])
                removed = removed || db.changesCount > 0
                try db.execute(sql: "DELETE FROM delivered_codes WHERE user = ?", arguments: [user])
                return removed || db.changesCount > 0
            }
        }
    }

    /// Removes every OTP factor, the recovery codes and the pending enrollment (not the contacts
    /// nor the keys); true if there was any.
    @discardableResult
    static func clearEnrollment(user: String, _ db: Database) throws -> Bool {
        try db.execute(sql: "DELETE FROM factors WHERE user = ?", arguments: [user])
        var removed = db.changesCount > 0
        try db.execute(sql: "DELETE FROM recovery_codes WHERE user = ?", arguments: [user])
        removed = removed || db.changesCount > 0
        try db.execute(sql: """
            UPDATE users SET pending_name = NULL, pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL,
                pending_digits = NULL, pending_period = NULL
            WHERE name = ? AND pending_name IS NOT NULL
            """, arguments: [user])
        return removed || db.changesCount > 0
    }
}
