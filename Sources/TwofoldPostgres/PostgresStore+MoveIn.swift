import Foundation
import PostgresNIO
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Moving a host in (schema v6), with the SQLite backend's semantics: a user at a time in one
/// transaction that locks the user's row first (as the verify batch does, so a login through
/// another server waits for the move or the move for it), and the host's audit records with its
/// mark in `moved_hosts`.
extension PostgresStore {
    public func moveIn(_ moved: MovedUser, dryRun: Bool) async throws -> MoveInOutcome {
        let sealer = self.sealer
        let name = moved.record.name
        // Sealed outside the transaction, to keep it short (used only for a new user).
        let factors = try moved.record.factors.map { factor -> PostgresFactorRow in
            guard let secret = factor.secret else { throw StoreError.notEnrolled(name) }
            return PostgresFactorRow(user: name, name: factor.name, parameters: factor.parameters,
                                     sealed: try sealer.seal(secret, .factor, user: name, factor: factor.name),
                                     verify: factor.verify, atMillis: factor.addedAtMillis)
        }.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let codes = try sealCodes(moved.recoveryCodes, user: name)
        let decide: @Sendable (PostgresConnection) async throws -> MoveInPlan = { connection in
            let plan = MoveInPlan.decide(moved, tier: try await Self.user(name, sealer: sealer, connection),
                                         tierSSHKeys: try await Self.sshKeys(user: name, connection),
                                         tierCodes: try await Self.unusedCodes(user: name, sealer: sealer, connection))
            if try await Self.anyCredentialStored(plan.newUser?.keys ?? [], connection) { return .keyTaken }
            return try await Self.anySSHKeyStored(plan.sshKeys, connection) ? .sshKeyTaken : plan
        }
        if dryRun { return try await read(statements: 5) { try await decide($0).outcome } }
        // Up to 12 statements, and one more per factor whose replay state is raised and per key.
        let keys = moved.record.keys.count
        do {
            return try await write(statements: 12 + factors.count + 2 * keys) { connection in
                // The row first, so that there is one to lock for a user new to the tier.
                try await connection.run("INSERT INTO users (name) VALUES (\(name)) ON CONFLICT (name) DO NOTHING")
                try await Self.lockUser(name, connection)
                let plan = try await decide(connection)
                // Rolled back, so that a user refused (a key another user's) leaves no row behind.
                if case .conflict(let reason) = plan.outcome { throw StoreError.conflict(reason) }
                if let user = plan.newUser { try await Self.writeMovedUser(user, factors: factors, codes: codes, connection) }
                try await Self.raise(plan, user: name, atMillis: moved.atMillis, connection)
                if !plan.sshKeys.isEmpty { try await Self.insert(plan.sshKeys.map { UserSSHKey(user: name, key: $0) }, connection) }
                return plan.outcome
            }
        } catch StoreError.conflict(let reason) {
            return .conflict(reason)
        }
    }

    /// A new user's row (over the empty one, or one without factors), factors, recovery codes and keys.
    private static func writeMovedUser(_ user: UserRecord, factors: [PostgresFactorRow], codes: [ByteBuffer],
                                       _ connection: PostgresConnection) async throws {
        let throttle = user.throttle
        try await connection.run("""
            UPDATE users SET failures = \(throttle.failures), not_before = \(throttle.notBeforeMillis),
                locked_until = \(throttle.lockedUntilMillis), requirement = \(user.requirement.rawValue),
                last_success = \(user.lastSuccessMillis), first_required = \(user.firstRequiredMillis),
                factor_kinds = \(FactorKindsColumn.text(user.factorKinds)), ssh_key_rule = \(SSHKeyRuleColumn.text(user.sshKeyRule))
            WHERE name = \(user.name)
            """)
        if !factors.isEmpty { try await PostgresFactorRow.upsert(factors, connection) }
        if !codes.isEmpty { try await storeCodes([user.name: codes], connection) }
        for key in user.keys { try await insert(key, user: user.name, connection) }
    }

    /// Whether a credential of `keys` is stored (a new user has none: another user's).
    private static func anyCredentialStored(_ keys: [Fido2Credential], _ connection: PostgresConnection) async throws -> Bool {
        guard !keys.isEmpty else { return false }
        return try await connection.run("""
            SELECT EXISTS (SELECT 1 FROM fido2_keys WHERE credential_id = ANY(\(keys.map { ByteBuffer(bytes: $0.id) })::bytea[]))
            """).first?.decode(Bool.self) ?? false
    }

    /// Whether the blob of an SSH key of `keys` is stored (the user's own are not among them: another user's).
    private static func anySSHKeyStored(_ keys: [SSHKeyRecord], _ connection: PostgresConnection) async throws -> Bool {
        guard !keys.isEmpty else { return false }
        return try await connection.run("""
            SELECT EXISTS (SELECT 1 FROM ssh_keys WHERE sha256(blob) = ANY(\(keys.map { ByteBuffer(bytes: Crypto.sha256($0.key.blob)) })::bytea[]))
            """).first?.decode(Bool.self) ?? false
    }

    /// An already moved user: the later replay states and key counters, and the codes the host used since.
    private static func raise(_ plan: MoveInPlan, user: String, atMillis: Int64, _ connection: PostgresConnection) async throws {
        for (factor, v) in plan.replay {
            try await connection.run("""
                UPDATE factors SET last_step = \(v.lastStep), counter = \(Int64(bitPattern: v.counter)), drift = \(v.drift),
                    last_offset = \(v.lastOffset)
                WHERE user_name = \(user) AND name = \(factor)
                """)
        }
        for (key, count) in plan.keyCounters {
            try await connection.run("""
                UPDATE fido2_keys SET sign_count = \(Int64(count)) WHERE user_name = \(user) AND name = \(key) AND sign_count < \(Int64(count))
                """)
        }
        guard !plan.usedCodes.isEmpty else { return }
        try await connection.run("""
            UPDATE recovery_codes SET used_at = \(atMillis)
            WHERE user_name = \(user) AND idx = ANY(\(plan.usedCodes)::bigint[]) AND used_at IS NULL
            """)
    }

    public func auditRecords(after afterID: Int64, limit: Int) async throws -> [AuditRecord] {
        guard limit > 0 else { try checkOpen(); return [] }
        return try await read { connection in
            try await connection.run("SELECT \(unescaped: Self.auditColumns) FROM audit WHERE id > \(afterID) ORDER BY id LIMIT \(limit)")
                .map(Self.auditRecord)
        }
    }

    public func movedAuditMark(host: String) async throws -> Int64? {
        try await read { connection in try await Self.auditMark(host: host, lock: false, connection) }
    }

    public func appendMovedAudit(_ records: [AuditRecord], host: String, through: Int64, previous: Int64?) async throws {
        try await write(statements: 4) { connection in
            // Two moves of one host at once: the second waits for the first's row, then sees its mark.
            try await connection.run("INSERT INTO moved_hosts (host, audit_through) VALUES (\(host), -1) ON CONFLICT (host) DO NOTHING")
            let current = try await Self.auditMark(host: host, lock: true, connection)
            guard current == previous else { throw StoreError.conflict(MovedAudit.raced(host)) }
            if !records.isEmpty { try await PostgresAudit.insert(records, connection) }
            try await connection.run("UPDATE moved_hosts SET audit_through = \(through) WHERE host = \(host)")
        }
    }

    private static func auditMark(host: String, lock: Bool, _ connection: PostgresConnection) async throws -> Int64? {
        let mark = try await connection.run("""
            SELECT audit_through FROM moved_hosts WHERE host = \(host) \(unescaped: lock ? "FOR UPDATE" : "")
            """).first?.decode(Int64.self)
        return mark == -1 ? nil : mark
    }
}
