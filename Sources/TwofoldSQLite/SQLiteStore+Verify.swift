import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// The verify path's mutations, applied inside a group-commit transaction. An accepted code writes
/// its factor's row (replay state is per factor) and, only when there is something to clear, the
/// user's throttle (per user): in the common case one row of `factors` and the audit row.
extension SQLiteStore {
    /// Applies one mutation; `previous` is the result of the one before it (for `auditAttempt`).
    static func apply(_ mutation: StoreMutation, previous: MutationResult?, _ db: Database) throws -> MutationResult {
        switch mutation {
        case let .accept(user, .recoveryCode(index), atMillis, policy):
            return try acceptRecoveryCode(user: user, index: index, atMillis: atMillis, policy: policy, db)

        case let .accept(user, use, atMillis, policy):
            // The throttle condition is part of the UPDATE; only an attempt it refuses reads the
            // user's row to learn why.
            try markUsed(use, user: user, lastUsed: atMillis, db)
            if db.changesCount == 1 {
                // A delivered code has no factor row to record its use in: the user's row records the login.
                if case .deliveredCode = use { try recordLogin(user: user, atMillis: atMillis, db) } else { try clearThrottle(user: user, db) }
                return .applied
            }
            guard let refused = try refuseIfThrottled(user: user, atMillis: atMillis, policy: policy, db) else { return .conflict }
            try markUsed(use, user: user, lastUsed: nil, db)
            return refused

        case let .consume(user, use):
            // A recovery code is long-lived and unguessable: it is never used up without a login.
            if case .recoveryCode = use { return .conflict }
            try markUsed(use, user: user, lastUsed: nil, db)
            return db.changesCount == 1 ? .applied : .conflict

        case let .recordFailure(user, atMillis, policy):
            guard let current = try throttleState(user: user, db) else { return .conflict }
            let next = Throttle.afterFailure(current, nowMillis: atMillis, policy: policy)
            try storeThrottle(next, user: user, db)
            return .appliedFailure(next)

        case let .audit(record):
            try insertAudit(record, db)
            return .applied

        case let .auditAttempt(record):
            try insertAudit(record.resolved(after: previous), db)
            return .applied
        }
    }

    /// Moves the factor's replay watermark past the step or counter of `use` (a key: to its
    /// signature counter), or deletes the delivered code it names. With `lastUsed` it is a login:
    /// applied only while no lock or delay is in force, and it records the factor's use (a
    /// delivered code: the caller records it).
    private static func markUsed(_ use: FactorUse, user: String, lastUsed: Int64?, _ db: Database) throws {
        let unthrottled = lastUsed == nil ? "" : """
             AND EXISTS (SELECT 1 FROM users WHERE name = ? AND (locked_until IS NULL OR locked_until <= ?)
                AND (not_before IS NULL OR not_before <= ?))
            """
        let throttleArguments: StatementArguments = lastUsed.map { [user, $0, $0] } ?? []
        switch use {
        case let .timeStep(factor, step, _, verify):
            let set = lastUsed == nil ? "last_step = ?" : "last_step = ?, drift = ?, last_offset = ?, last_used = ?"
            let setArguments: StatementArguments = lastUsed.map { [step, verify.drift, verify.lastOffset, $0] } ?? [step]
            try db.cachedStatement(sql: """
                UPDATE factors SET \(set) WHERE user = ? AND name = ? AND kind = 'totp' AND (last_step IS NULL OR last_step < ?)\(unthrottled)
                """).execute(arguments: setArguments + [user, factor, step] + throttleArguments)
        case let .counter(factor, counter, _):
            guard counter < UInt64(Int64.max) else { return }
            let value = Int64(counter)
            let set = lastUsed == nil ? "counter = ?" : "counter = ?, last_used = ?"
            let setArguments: StatementArguments = lastUsed.map { [value + 1, $0] } ?? [value + 1]
            try db.cachedStatement(sql: """
                UPDATE factors SET \(set) WHERE user = ? AND name = ? AND kind = 'hotp' AND counter <= ?\(unthrottled)
                """).execute(arguments: setArguments + [user, factor, value] + throttleArguments)
        case let .deliveredCode(channel, id):
            // Used once: deleted if it is still the user's login code of that id.
            try db.cachedStatement(sql: """
                DELETE FROM delivered_codes WHERE user = ? AND purpose = 'login' AND id = ? AND channel = ?\(unthrottled)
                """).execute(arguments: [user, id, channel.rawValue] + throttleArguments)
        case let .keyAssertion(name, credential, signCount):
            // Only a counter that advances (`Fido2Credential.counterAdvances`, the same rule in SQL):
            // a cloned key's assertion, or a second use of one count, changes nothing (a conflict).
            let count = Int64(signCount)
            let set = lastUsed == nil ? "sign_count = ?" : "sign_count = ?, last_used = ?"
            let setArguments: StatementArguments = lastUsed.map { [count, $0] } ?? [count]
            try db.cachedStatement(sql: """
                UPDATE fido2_keys SET \(set) WHERE user = ? AND name = ? AND credential_id = ?
                    AND ((sign_count = 0 AND ? = 0) OR ? > sign_count)\(unthrottled)
                """).execute(arguments: setArguments + [user, name, Data(credential), count, count] + throttleArguments)
        case .recoveryCode:
            preconditionFailure("recovery codes are applied by acceptRecoveryCode")
        }
    }

    private static func acceptRecoveryCode(user: String, index: Int, atMillis: Int64, policy: ThrottlePolicy,
                                           _ db: Database) throws -> MutationResult {
        if let refused = try refuseIfThrottled(user: user, atMillis: atMillis, policy: policy, db) { return refused }
        try db.cachedStatement(sql: "UPDATE recovery_codes SET used_at = ? WHERE user = ? AND idx = ? AND used_at IS NULL")
            .execute(arguments: [atMillis, user, index])
        guard db.changesCount == 1 else { return .conflict }
        // A recovery code is a successful login: reset the throttle and record it.
        try recordLogin(user: user, atMillis: atMillis, db)
        return .applied
    }

    /// A login with a recovery code or a delivered code (no factor row of its own): resets the
    /// user's throttle and records the success on the user's row.
    private static func recordLogin(user: String, atMillis: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL, last_success = ? WHERE name = ?
            """).execute(arguments: [atMillis, user])
    }

    /// Resets the user's throttle after a success; writes the row only when there is something to clear.
    private static func clearThrottle(user: String, _ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL
            WHERE name = ? AND (failures <> 0 OR not_before IS NOT NULL OR locked_until IS NOT NULL)
            """).execute(arguments: [user])
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

    static func insertAudit(_ r: AuditRecord, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit (time, action, user, service, rhost, tty, peer_uid, outcome, reason, host)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [r.timeMillis, r.action, r.user, r.service, r.rhost, r.tty,
                                     r.peerUID.map { Int64($0) }, r.outcome, r.reason, r.host])
    }
}
