import Foundation
import PostgresNIO
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Users and their factors: reading them (one statement per user, a row per factor), enrolling,
/// removing. Writes that touch a user's factors lock the user's row first, as the verify batch does,
/// so the two wait for each other rather than deadlock.
extension PostgresStore {
    /// The user's columns (0...9), then the factor's (10...20), then its sealed secret (21).
    private static let userColumns = """
        u.name, u.pending_name, u.failures, u.not_before, u.locked_until, u.requirement, u.last_success, u.first_required,
        u.factor_kinds, u.ssh_key_rule
        """
    private static let factorColumns = """
        f.name, f.kind, f.algorithm, f.digits, f.period, f.last_step, f.counter, f.drift, f.last_offset, f.added_at, f.last_used
        """
    /// The count of unused recovery codes (index 22).
    private static let codesLeftColumn = "(SELECT count(*) FROM recovery_codes r WHERE r.user_name = u.name AND r.used_at IS NULL)"
    /// After the count: the user's contacts as a JSON array (23), then its login code's columns
    /// (24...32), then its keys as a JSON array (33).
    private static let deliveryColumns = """
        c.list, d.id, d.channel, d.destination, d.hash, d.digits, d.host, d.service, d.created_at, d.expires_at, k.list
        """
    /// The delivery columns of a listing: no login code.
    private static let noCodeColumns = "NULL::bigint, NULL::text, NULL::text, NULL::bytea, NULL::integer, NULL::text, NULL::text, NULL::bigint, NULL::bigint"
    /// User `u`'s contacts as one JSON array of `Contact`s in channel then address order (one range
    /// of their key); NULL: none. Contacts are not secrets: they are read as they are stored.
    private static let contactsList = """
        SELECT json_agg(json_build_object('channel', channel, 'value', value, 'addedMillis', added_at, 'verifiedMillis', verified_at)
                        ORDER BY channel, value)::text AS list
        FROM contacts WHERE user_name = u.name
        """
    /// The user's row with its login code (a key lookup, at most one row), its contacts and its
    /// keys (once per user each: a user without keys costs one probe of the keys' index), then a
    /// row per factor.
    private static let usersWithDelivery = """
        users u
        LEFT JOIN delivered_codes d ON d.user_name = u.name AND d.purpose = 'login'
        LEFT JOIN LATERAL (\(contactsList)) c ON true
        LEFT JOIN LATERAL (\(keysList)) k ON true
        LEFT JOIN factors f ON f.user_name = u.name
        """
    private static let fromUsers = "FROM \(usersWithDelivery)"

    public func user(_ name: String) async throws -> UserRecord? {
        let sealer = self.sealer
        return try await read { connection in try await Self.user(name, sealer: sealer, connection) }
    }

    /// The user's record with the secrets opened, read on `connection` (inside a caller's transaction).
    static func user(_ name: String, sealer: Sealer, _ connection: PostgresConnection) async throws -> UserRecord? {
        let rows = try await connection.run("""
            SELECT \(unescaped: userColumns), \(unescaped: factorColumns), f.secret, \(unescaped: codesLeftColumn),
                \(unescaped: deliveryColumns)
            \(unescaped: fromUsers) WHERE u.name = \(name) ORDER BY f.name
            """)
        return try PostgresUserRows.decode(rows, sealer: sealer).first
    }

    /// One statement: the setting in a one-row relation, the user's rows joined to it (none: the
    /// setting alone, with a NULL name), its contacts, login code and keys with them; no recovery-code
    /// count (a login does not need it).
    public func loginRecord(_ name: String, setting key: String) async throws -> (record: UserRecord?, setting: String?) {
        let sealer = self.sealer
        return try await read { connection in
            let rows = try await connection.run("""
                SELECT \(unescaped: Self.userColumns), \(unescaped: Self.factorColumns), f.secret, 0::bigint,
                    \(unescaped: Self.deliveryColumns), p.value
                FROM (SELECT (SELECT value FROM settings WHERE key = \(key)) AS value) p
                LEFT JOIN (\(unescaped: Self.usersWithDelivery)) ON u.name = \(name)
                ORDER BY f.name
                """)
            var setting: String?
            for row in rows {
                setting = try row.makeRandomAccess()[PostgresUserRows.columns].decode(String?.self)
                break
            }
            return (try PostgresUserRows.decode(rows, sealer: sealer).first, setting)
        }
    }

    public func listUsers(after afterName: String?, limit: Int) async throws -> [UserRecord] {
        guard limit > 0 else { try checkOpen(); return [] }
        return try await read { connection in
            // Listings do not even read the sealed secrets, nor the login code.
            let rows = try await connection.run("""
                SELECT \(unescaped: Self.userColumns), \(unescaped: Self.factorColumns), NULL::bytea, \(unescaped: Self.codesLeftColumn),
                    c.list, \(unescaped: Self.noCodeColumns), k.list
                FROM users u
                LEFT JOIN LATERAL (\(unescaped: Self.contactsList)) c ON true
                LEFT JOIN LATERAL (\(unescaped: Self.keysList)) k ON true
                LEFT JOIN factors f ON f.user_name = u.name
                WHERE u.name IN (SELECT name FROM users WHERE name > \(afterName ?? "") ORDER BY name LIMIT \(limit))
                ORDER BY u.name, f.name
                """)
            return try PostgresUserRows.decode(rows, sealer: nil)
        }
    }

    // MARK: - Enrollment

    public func beginEnrollment(user: String, factor: String, secret: SecretBytes, parameters: OTPParameters, atMillis: Int64) async throws {
        let sealed = ByteBuffer(bytes: try sealer.seal(secret, .pendingFactor, user: user, factor: factor))
        try await write { connection in
            try await connection.run("""
                INSERT INTO users (name, pending_name, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period)
                VALUES (\(user), \(factor), \(sealed), \(parameters.method.rawValue), \(parameters.algorithm.rawValue),
                        \(parameters.digits), \(parameters.period))
                ON CONFLICT (name) DO UPDATE SET
                    pending_name = excluded.pending_name, pending_secret = excluded.pending_secret,
                    pending_method = excluded.pending_method, pending_algorithm = excluded.pending_algorithm,
                    pending_digits = excluded.pending_digits, pending_period = excluded.pending_period
                """)
        }
    }

    public func pendingEnrollment(user: String) async throws -> PendingEnrollment? {
        let sealer = self.sealer
        return try await read { connection in try await Self.pending(user: user, lock: false, sealer: sealer, connection) }
    }

    private static func pending(user: String, lock: Bool, sealer: Sealer, _ connection: PostgresConnection) async throws -> PendingEnrollment? {
        guard let row = try await connection.run("""
            SELECT pending_name, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period
            FROM users WHERE name = \(user) \(unescaped: lock ? "FOR UPDATE" : "")
            """).first else { return nil }
        let columns = row.makeRandomAccess()
        guard let name = try columns[0].decode(String?.self), let blob = try columns[1].decode(ByteBuffer?.self) else { return nil }
        return PendingEnrollment(factor: name, secret: try sealer.open(Array(blob.readableBytesView), .pendingFactor, user: user, factor: name),
                                 parameters: try PostgresUserRows.parameters(columns, at: 2, user: user))
    }

    public func activateEnrollment(user: String, recoveryCodes: [RecoveryCodeHash]?, verify: VerifyState, atMillis: Int64) async throws {
        let sealer = self.sealer
        let codes = try recoveryCodes.map { try sealCodes($0, user: user) }
        try await write(statements: 4) { connection in
            guard let pending = try await Self.pending(user: user, lock: true, sealer: sealer, connection) else {
                throw StoreError.notEnrolled(user)
            }
            let factor = PostgresFactorRow(user: user, name: pending.factor, parameters: pending.parameters,
                                           sealed: try sealer.seal(pending.secret, .factor, user: user, factor: pending.factor),
                                           verify: verify, atMillis: atMillis)
            try await PostgresFactorRow.upsert([factor], connection)
            try await connection.run("""
                UPDATE users SET pending_name = NULL, pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL,
                    pending_digits = NULL, pending_period = NULL, failures = 0, not_before = NULL, locked_until = NULL
                WHERE name = \(user)
                """)
            if let codes { try await Self.storeCodes([user: codes], connection) }
        }
    }

    public func importEnrollment(_ record: EnrollmentImportRecord) async throws {
        try await importEnrollments([record])
    }

    /// All or none, in six statements however many: the users (throttle cleared), their pending
    /// enrollments of an imported name dropped, the factors, the recovery codes. As applying the
    /// imports one by one would leave it: the last of a (user, factor) wins, and the last non-empty
    /// code set of a user. Rows go in name order, the order the verify batch locks them in.
    public func importEnrollments(_ imports: [EnrollmentImportRecord]) async throws {
        try checkOpen()
        guard !imports.isEmpty else { return }
        // Seal outside the transaction, to keep it short.
        var factors: [String: [String: PostgresFactorRow]] = [:]
        var codes: [String: [ByteBuffer]] = [:]
        for item in imports {
            factors[item.user, default: [:]][item.factor] = PostgresFactorRow(
                user: item.user, name: item.factor, parameters: item.parameters,
                sealed: try sealer.seal(item.secret, .factor, user: item.user, factor: item.factor), verify: item.verify, atMillis: item.atMillis)
            if !item.recoveryCodes.isEmpty { codes[item.user] = try sealCodes(item.recoveryCodes, user: item.user) }
        }
        // Byte order, as COLLATE "C" sorts.
        let users = factors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let rows = users.flatMap { user in factors[user, default: [:]].values.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) } }
        let sealedCodes = codes
        try await write(statements: 6) { connection in
            try await connection.run("""
                INSERT INTO users (name) SELECT unnest(\(users)::text[])
                ON CONFLICT (name) DO UPDATE SET failures = 0, not_before = NULL, locked_until = NULL
                """)
            // A pending enrollment of an imported name would replace the imported factor: it goes.
            try await connection.run("""
                UPDATE users u SET pending_name = NULL, pending_secret = NULL
                FROM unnest(\(rows.map(\.user))::text[], \(rows.map(\.name))::text[]) AS p(user_name, name)
                WHERE u.name = p.user_name AND u.pending_name = p.name
                """)
            try await PostgresFactorRow.upsert(rows, connection)
            if !sealedCodes.isEmpty { try await Self.storeCodes(sealedCodes, connection) }
        }
    }

    // MARK: - Removal

    public func removeFactor(user: String, name: String) async throws -> Bool {
        try await write(statements: 4) { connection in
            try await Self.lockUser(user, connection)
            let deleted = try await connection.run("DELETE FROM factors WHERE user_name = \(user) AND name = \(name)").metadata.rows
            guard deleted == 1 else { return false }
            // A verified contact or a key is a second factor too: the recovery codes stay while one is left.
            if try await Self.factorCount(user: user, connection) == 0 { _ = try await Self.clearEnrollment(user: user, revoking: false, connection) }
            return true
        }
    }

    public func revoke(user: String) async throws -> Bool {
        try await write(statements: 2) { connection in
            try await Self.lockUser(user, connection)
            return try await Self.clearEnrollment(user: user, revoking: true, connection)
        }
    }

    /// Removes every OTP factor, the recovery codes and the pending enrollment, when `revoking` the
    /// contacts, delivered codes, keys and SSH keys too (one statement); true if there was any.
    static func clearEnrollment(user: String, revoking: Bool, _ connection: PostgresConnection) async throws -> Bool {
        let removed = try await connection.run("""
            WITH f AS (DELETE FROM factors WHERE user_name = \(user) RETURNING 1),
                 r AS (DELETE FROM recovery_codes WHERE user_name = \(user) RETURNING 1),
                 p AS (UPDATE users SET pending_name = NULL, pending_secret = NULL, pending_method = NULL, pending_algorithm = NULL,
                           pending_digits = NULL, pending_period = NULL
                       WHERE name = \(user) AND pending_name IS NOT NULL RETURNING 1),
                 c AS (DELETE FROM contacts WHERE user_name = \(user) AND \(revoking) RETURNING 1),
                 d AS (DELETE FROM delivered_codes WHERE user_name = \(user) AND \(revoking) RETURNING 1),
                 k AS (DELETE FROM fido2_keys WHERE user_name = \(user) AND \(revoking) RETURNING 1),
                 s AS (DELETE FROM ssh_keys WHERE user_name = \(user) AND \(revoking) RETURNING 1)
            SELECT (SELECT count(*) FROM f) + (SELECT count(*) FROM r) + (SELECT count(*) FROM p) + (SELECT count(*) FROM c)
                + (SELECT count(*) FROM d) + (SELECT count(*) FROM k) + (SELECT count(*) FROM s)
            """).first?.decode(Int64.self)
        return (removed ?? 0) > 0
    }

    /// Locks the user's row (if any) before the writes that follow touch its factors or codes.
    static func lockUser(_ user: String, _ connection: PostgresConnection) async throws {
        try await connection.run("SELECT 1 FROM users WHERE name = \(user) FOR UPDATE")
    }
}
