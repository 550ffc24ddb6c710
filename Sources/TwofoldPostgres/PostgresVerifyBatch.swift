import Foundation
import PostgresNIO
import TwofoldCore
import TwofoldStore

/// The mutations of one verify batch, applied in order inside its transaction with the SQLite
/// backend's semantics (SQLiteStore+Verify.swift). The batch holds its users' rows locked, so the
/// throttle states read when locking stay true while it runs: lock and delay are decided here, from
/// them, and every change is written back. Audit records wait for one INSERT at the end.
struct PostgresVerifyBatch {
    let connection: PostgresConnection
    /// The locked users' throttle states; a user absent here does not exist.
    var throttles: [String: ThrottleState]
    private var audits: [AuditRecord] = []

    init(connection: PostgresConnection, throttles: [String: ThrottleState]) {
        self.connection = connection
        self.throttles = throttles
    }

    mutating func apply(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        var results: [MutationResult] = []
        results.reserveCapacity(mutations.count)
        for mutation in mutations {
            results.append(try await apply(mutation, previous: results.last))
        }
        return results
    }

    private mutating func apply(_ mutation: StoreMutation, previous: MutationResult?) async throws -> MutationResult {
        switch mutation {
        case let .accept(user, .recoveryCode(index), atMillis, policy):
            return try await acceptRecoveryCode(user: user, index: index, atMillis: atMillis, policy: policy)
        case let .accept(user, use, atMillis, policy):
            return try await accept(use, user: user, atMillis: atMillis, policy: policy)
        case let .consume(user, use):
            // A recovery code is long-lived and unguessable: it is never used up without a login.
            if case .recoveryCode = use { return .conflict }
            return try await consume(use, user: user) ? .applied : .conflict
        case let .recordFailure(user, atMillis, policy):
            guard let current = throttles[user] else { return .conflict }
            let next = Throttle.afterFailure(current, nowMillis: atMillis, policy: policy)
            try await storeThrottle(next, user: user)
            return .appliedFailure(next)
        case let .audit(record):
            audits.append(record)
            return .applied
        case let .auditAttempt(record):
            audits.append(record.resolved(after: previous))
            return .applied
        }
    }

    /// A TOTP step or HOTP counter of a login: applied only while no lock or delay is in force; a
    /// refused one is used up all the same and counted as a failure.
    private mutating func accept(_ use: FactorUse, user: String, atMillis: Int64, policy: ThrottlePolicy) async throws -> MutationResult {
        // No user row: no factor either (the foreign key), as SQLite's EXISTS finds.
        guard let current = throttles[user] else { return .conflict }
        switch Throttle.commitDecision(current, nowMillis: atMillis, policy: policy) {
        case .proceed:
            guard try await login(use, user: user, atMillis: atMillis) else { return .conflict }
            throttles[user] = ThrottleState()
            return .applied
        case .refuse(let next):
            if next != current { try await storeThrottle(next, user: user) }
            _ = try await consume(use, user: user)
            return .throttled(next)
        }
    }

    /// Moves the factor's watermark past `use`, records its use and clears the user's throttle when
    /// there is something to clear: one statement. True if the factor took it (fresh step or counter).
    private func login(_ use: FactorUse, user: String, atMillis: Int64) async throws -> Bool {
        let query: PostgresQuery
        switch use {
        case let .timeStep(factor, step, _, verify):
            query = """
                WITH used AS (
                    UPDATE factors SET last_step = \(step), drift = \(verify.drift), last_offset = \(verify.lastOffset), last_used = \(atMillis)
                    WHERE user_name = \(user) AND name = \(factor) AND kind = 'totp' AND (last_step IS NULL OR last_step < \(step))
                    RETURNING 1
                ), cleared AS (\(unescaped: Self.clearThrottle) \(user) \(unescaped: Self.clearThrottleCondition))
                SELECT count(*) FROM used
                """
        case let .counter(factor, counter, _):
            guard counter < UInt64(Int64.max) else { return false }
            query = """
                WITH used AS (
                    UPDATE factors SET counter = \(Int64(counter) + 1), last_used = \(atMillis)
                    WHERE user_name = \(user) AND name = \(factor) AND kind = 'hotp' AND counter <= \(Int64(counter))
                    RETURNING 1
                ), cleared AS (\(unescaped: Self.clearThrottle) \(user) \(unescaped: Self.clearThrottleCondition))
                SELECT count(*) FROM used
                """
        case .recoveryCode:
            preconditionFailure("recovery codes are applied by acceptRecoveryCode")
        }
        return try await count(query) == 1
    }

    /// After a login: resets the user's throttle, writing the row only when there is something to clear.
    private static let clearThrottle = "UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name ="
    private static let clearThrottleCondition = """
        AND (failures <> 0 OR not_before IS NOT NULL OR locked_until IS NOT NULL) AND EXISTS (SELECT 1 FROM used)
        """

    /// Moves the factor's watermark past `use` without a login (no last use, no throttle change).
    private func consume(_ use: FactorUse, user: String) async throws -> Bool {
        switch use {
        case let .timeStep(factor, step, _, _):
            return try await connection.run("""
                UPDATE factors SET last_step = \(step)
                WHERE user_name = \(user) AND name = \(factor) AND kind = 'totp' AND (last_step IS NULL OR last_step < \(step))
                """).metadata.rows == 1
        case let .counter(factor, counter, _):
            guard counter < UInt64(Int64.max) else { return false }
            return try await connection.run("""
                UPDATE factors SET counter = \(Int64(counter) + 1)
                WHERE user_name = \(user) AND name = \(factor) AND kind = 'hotp' AND counter <= \(Int64(counter))
                """).metadata.rows == 1
        case .recoveryCode:
            return false
        }
    }

    /// A recovery code: refused (and counted) while a lock or delay is in force, else used once; a
    /// login, so it resets the throttle and records the success.
    private mutating func acceptRecoveryCode(user: String, index: Int, atMillis: Int64, policy: ThrottlePolicy) async throws -> MutationResult {
        if let current = throttles[user], case .refuse(let next) = Throttle.commitDecision(current, nowMillis: atMillis, policy: policy) {
            if next != current { try await storeThrottle(next, user: user) }
            return .throttled(next)
        }
        let used = try await count("""
            WITH used AS (
                UPDATE recovery_codes SET used_at = \(atMillis) WHERE user_name = \(user) AND idx = \(index) AND used_at IS NULL
                RETURNING 1
            ), login AS (
                UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL, last_success = \(atMillis)
                WHERE name = \(user) AND EXISTS (SELECT 1 FROM used)
            )
            SELECT count(*) FROM used
            """)
        guard used == 1 else { return .conflict }
        throttles[user] = ThrottleState()
        return .applied
    }

    private mutating func storeThrottle(_ state: ThrottleState, user: String) async throws {
        try await connection.run("""
            UPDATE users SET failures = \(state.failures), not_before = \(state.notBeforeMillis), locked_until = \(state.lockedUntilMillis)
            WHERE name = \(user)
            """)
        throttles[user] = state
    }

    private func count(_ query: PostgresQuery) async throws -> Int64 {
        try await connection.run(query).first?.decode(Int64.self) ?? 0
    }

    /// The batch's audit records in one INSERT, in order (ids grow in the order of the batch).
    func writeAudit() async throws {
        guard !audits.isEmpty else { return }
        try await PostgresAudit.insert(audits, connection)
    }
}
