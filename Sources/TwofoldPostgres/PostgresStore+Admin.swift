import PostgresNIO
import TwofoldCore
import TwofoldStore

/// Recovery codes, overrides, settings and the audit log: the admin requests, each one transaction
/// (writes) or one statement (reads), with the SQLite backend's semantics.
extension PostgresStore {
    // MARK: - Recovery codes

    public func replaceRecoveryCodes(user: String, codes: [RecoveryCodeHash]) async throws {
        let sealed = try sealCodes(codes, user: user)
        try await write(statements: 4) { connection in
            try await Self.lockUser(user, connection)
            guard try await Self.factorCount(user: user, connection) > 0 else { throw StoreError.notEnrolled(user) }
            try await Self.storeCodes([user: sealed], connection)
        }
    }

    public func recoveryCodes(user: String) async throws -> [(index: Int, hash: RecoveryCodeHash)] {
        let sealer = self.sealer
        return try await read { connection in try await Self.unusedCodes(user: user, sealer: sealer, connection) }
    }

    /// The user's unused recovery codes, opened, read on `connection` (inside a caller's transaction).
    static func unusedCodes(user: String, sealer: Sealer, _ connection: PostgresConnection) async throws -> [(index: Int, hash: RecoveryCodeHash)] {
        let rows = try await connection.run("SELECT idx, sealed FROM recovery_codes WHERE user_name = \(user) AND used_at IS NULL ORDER BY idx")
            .map { row in try row.decode((Int, ByteBuffer).self) }
        return try rows.map { index, blob in (index, try sealer.openRecovery(Array(blob.readableBytesView), user: user, index: index)) }
    }

    // MARK: - Overrides

    public func unlock(user: String) async throws {
        try await write { connection in
            try await connection.run("UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name = \(user)")
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
        try await write { connection in
            try await connection.run("""
                INSERT INTO users (name, \(unescaped: name)) VALUES (\(user), \(value))
                ON CONFLICT (name) DO UPDATE SET \(unescaped: name) = excluded.\(unescaped: name)
                """)
        }
    }

    public func markFirstRequired(user: String, atMillis: Int64) async throws -> Int64 {
        try await write { connection in
            let stored = try await connection.run("""
                INSERT INTO users (name, first_required) VALUES (\(user), \(atMillis))
                ON CONFLICT (name) DO UPDATE SET first_required = coalesce(users.first_required, excluded.first_required)
                RETURNING first_required
                """).first?.decode(Int64?.self)
            guard let value = stored else { throw StoreError.database("first_required was not stored") }
            return value
        }
    }

    // MARK: - Settings

    public func setting(_ key: String) async throws -> String? {
        try await read { connection in
            try await connection.run("SELECT value FROM settings WHERE key = \(key)").first?.decode(String.self)
        }
    }

    public func setSetting(_ key: String, value: String) async throws {
        try await write { connection in
            try await connection.run("""
                INSERT INTO settings (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = excluded.value
                """)
        }
    }

    // MARK: - Audit

    public func audit(_ query: AuditQuery) async throws -> [AuditRecord] {
        guard query.limit > 0 else { try checkOpen(); return [] }
        // NULL filters match everything: one statement for every combination.
        let records = try await read { connection in
            try await connection.run("""
                SELECT \(unescaped: Self.auditColumns) FROM audit
                WHERE (\(query.user)::text IS NULL OR user_name = \(query.user))
                    AND (\(query.sinceMillis)::bigint IS NULL OR time >= \(query.sinceMillis))
                    AND (\(query.outcome)::text IS NULL OR outcome = \(query.outcome))
                    AND (\(query.host)::text IS NULL OR host = \(query.host))
                    AND (\(query.action)::text IS NULL OR action = \(query.action))
                ORDER BY id DESC LIMIT \(query.limit)
                """).map(Self.auditRecord)
        }
        return records.reversed()
    }

    static let auditColumns = "id, time, action, user_name, service, rhost, tty, peer_uid, outcome, reason, host"

    /// A row of `auditColumns`.
    static func auditRecord(_ row: PostgresRow) throws -> AuditRecord {
        let (id, time, action, user, service, rhost, tty, peerUID, outcome, reason, host)
            = try row.decode((Int64, Int64, String, String?, String?, String?, String?, Int64?, String, String?, String?).self)
        return AuditRecord(id: id, timeMillis: time, action: action, user: user, service: service, rhost: rhost, tty: tty,
                           peerUID: peerUID.flatMap { UInt32(exactly: $0) }, outcome: outcome, reason: reason, host: host)
    }

    public func pruneAudit(before beforeMillis: Int64, limit: Int) async throws -> Int {
        guard limit > 0 else { try checkOpen(); return 0 }
        return try await write { connection in
            // Oldest first by id (ids grow with time): the scan stops once `limit` old records are found.
            try await connection.run("""
                DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < \(beforeMillis) ORDER BY id LIMIT \(limit))
                """).metadata.rows ?? 0
        }
    }
}
