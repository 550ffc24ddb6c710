import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// Moving a host in (schema v6): a user at a time in one write transaction, and the host's audit
/// records with its mark in `moved_hosts`.
extension SQLiteStore {
    public func moveIn(_ moved: MovedUser, dryRun: Bool) async throws -> MoveInOutcome {
        try await guarded {
            let sealer = self.sealer
            let name = moved.record.name
            // Sealed outside the write transaction, to keep it short (used only for a new user).
            let factors = try moved.record.factors.map { factor -> (FactorRecord, Data) in
                guard let secret = factor.secret else { throw StoreError.notEnrolled(name) }
                return (factor, Data(try sealer.seal(secret, .factor, user: name, factor: factor.name)))
            }
            let codes = try sealCodes(moved.recoveryCodes, user: name)
            let decide: @Sendable (Database) throws -> MoveInPlan = { db in
                let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.userSQL), arguments: [name])
                var tier = try Self.decodeUsers(rows, sealer: sealer, countsCodes: true).first
                if tier != nil { try Self.attachRelated(&tier!, db) }
                let plan = MoveInPlan.decide(moved, tier: tier, tierSSHKeys: try Self.sshKeys(user: name, db),
                                             tierCodes: try Self.unusedCodes(user: name, sealer: sealer, db))
                if try Self.anyCredentialStored(plan.newUser?.keys ?? [], db) { return .keyTaken }
                return try Self.anySSHKeyStored(plan.sshKeys, db) ? .sshKeyTaken : plan
            }
            if dryRun { return try await pool.read { try decide($0).outcome } }
            return try await pool.write { db in
                let plan = try decide(db)
                if let user = plan.newUser {
                    try Self.writeMovedUser(user, factors: factors, codes: codes, db)
                }
                try Self.raise(plan, user: name, atMillis: moved.atMillis, db)
                for key in plan.sshKeys { try Self.insert(key, user: name, db) }
                return plan.outcome
            }
        }
    }

    /// A new user's row (inserted, or over a row without factors), factors, recovery codes and keys.
    private static func writeMovedUser(_ user: UserRecord, factors: [(FactorRecord, Data)], codes: [Data], _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO users (name, failures, not_before, locked_until, requirement, last_success, first_required, factor_kinds,
                               ssh_key_rule)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET
                failures = excluded.failures, not_before = excluded.not_before, locked_until = excluded.locked_until,
                requirement = excluded.requirement, last_success = excluded.last_success,
                first_required = excluded.first_required, factor_kinds = excluded.factor_kinds, ssh_key_rule = excluded.ssh_key_rule
            """, arguments: [user.name, user.throttle.failures, user.throttle.notBeforeMillis, user.throttle.lockedUntilMillis,
                             user.requirement.rawValue, user.lastSuccessMillis, user.firstRequiredMillis,
                             FactorKindsColumn.text(user.factorKinds), SSHKeyRuleColumn.text(user.sshKeyRule)])
        for (factor, secret) in factors {
            try upsertFactor(user: user.name, name: factor.name, parameters: factor.parameters, sealed: secret, verify: factor.verify,
                             atMillis: factor.addedAtMillis, db)
        }
        if !codes.isEmpty { try storeCodes(codes, user: user.name, db) }
        for key in user.keys { try insert(key, user: user.name, db) }
    }

    /// Whether a credential of `keys` is stored (a new user has none: another user's).
    private static func anyCredentialStored(_ keys: [Fido2Credential], _ db: Database) throws -> Bool {
        try keys.contains { key in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM fido2_keys WHERE credential_id = ?)", arguments: [Data(key.id)]) ?? false
        }
    }

    /// Whether the blob of an SSH key of `keys` is stored (the user's own are not among them: another user's).
    private static func anySSHKeyStored(_ keys: [SSHKeyRecord], _ db: Database) throws -> Bool {
        try keys.contains { key in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM ssh_keys WHERE blob = ?)", arguments: [Data(key.key.blob)]) ?? false
        }
    }

    /// An already moved user: the later replay states and key counters, and the codes the host used since.
    private static func raise(_ plan: MoveInPlan, user: String, atMillis: Int64, _ db: Database) throws {
        for (factor, v) in plan.replay {
            try db.execute(sql: "UPDATE factors SET last_step = ?, counter = ?, drift = ?, last_offset = ? WHERE user = ? AND name = ?",
                           arguments: [v.lastStep, Int64(bitPattern: v.counter), v.drift, v.lastOffset, user, factor])
        }
        for (key, count) in plan.keyCounters {
            try db.execute(sql: "UPDATE fido2_keys SET sign_count = ?1 WHERE user = ?2 AND name = ?3 AND sign_count < ?1",
                           arguments: [Int64(count), user, key])
        }
        for index in plan.usedCodes {
            try db.execute(sql: "UPDATE recovery_codes SET used_at = ? WHERE user = ? AND idx = ? AND used_at IS NULL",
                           arguments: [atMillis, user, index])
        }
    }

    public func auditRecords(after afterID: Int64, limit: Int) async throws -> [AuditRecord] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                try Self.auditRecords(sql: "SELECT \(Self.auditColumns) FROM audit WHERE id > ? ORDER BY id LIMIT ?",
                                      arguments: [afterID, limit], db)
            }
        }
    }

    public func movedAuditMark(host: String) async throws -> Int64? {
        try await guarded {
            try await pool.read { db in try Self.auditMark(host: host, db) }
        }
    }

    public func appendMovedAudit(_ records: [AuditRecord], host: String, through: Int64, previous: Int64?) async throws {
        try await guarded {
            try await pool.write { db in
                guard try Self.auditMark(host: host, db) == previous else { throw StoreError.conflict(MovedAudit.raced(host)) }
                for record in records { try Self.insertAudit(record, db) }
                try db.execute(sql: """
                    INSERT INTO moved_hosts (host, audit_through) VALUES (?, ?)
                    ON CONFLICT (host) DO UPDATE SET audit_through = excluded.audit_through
                    """, arguments: [host, through])
            }
        }
    }

    private static func auditMark(host: String, _ db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT audit_through FROM moved_hosts WHERE host = ?", arguments: [host])
    }
}
