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

    /// Applies the batch in two passes. First, every user's first state change in the batch, when
    /// it is a TOTP or HOTP login the throttle lets through, in one statement per kind for the whole
    /// batch (the common case: a batch of logins of different users costs two round trips whatever
    /// its size). Then everything else, one statement each, in order. Only one user's changes depend
    /// on each other, and a user's later changes run after its first: the order within each user is
    /// the batch's, as SQLite applies it.
    mutating func apply(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        var results = [MutationResult?](repeating: nil, count: mutations.count)
        for kind in ["totp", "hotp"] {
            let logins = firstLogins(mutations, kind: kind)
            guard !logins.isEmpty else { continue }
            let applied = try await loginAll(logins, kind: kind)
            for login in logins {
                let took = applied.contains(login.index)
                results[login.index] = took ? .applied : .conflict
                if took { throttles[login.user] = ThrottleState() }
            }
        }
        for (index, mutation) in mutations.enumerated() where results[index] == nil {
            results[index] = try await apply(mutation, previous: index > 0 ? results[index - 1] : nil)
        }
        return results.map { $0! }
    }

    /// One login of the first pass: the mutation's index and what it sets.
    struct BulkLogin {
        let index: Int
        let user: String
        let use: FactorUse
        let atMillis: Int64
    }

    /// Each user's first state change, when it is a login of `kind` that the user's throttle lets
    /// through now (a refused one is left to the second pass, which counts it).
    func firstLogins(_ mutations: [StoreMutation], kind: String) -> [BulkLogin] {
        var seen: Set<String> = []
        var logins: [BulkLogin] = []
        for (index, mutation) in mutations.enumerated() {
            switch mutation {
            case let .accept(user, use, atMillis, policy):
                defer { seen.insert(user) }
                guard !seen.contains(user), let current = throttles[user],
                      case .proceed = Throttle.commitDecision(current, nowMillis: atMillis, policy: policy) else { continue }
                switch (use, kind) {
                case (.timeStep, "totp"), (.counter, "hotp"): logins.append(BulkLogin(index: index, user: user, use: use, atMillis: atMillis))
                default: continue
                }
            case .consume(let user, _), .recordFailure(let user, _, _):
                seen.insert(user)
            case .audit, .auditAttempt:
                continue
            }
        }
        return logins
    }

    /// The first pass's logins of one kind in one statement: each moves its factor's watermark when
    /// fresh, records the use and clears its user's throttle when there is something to clear.
    /// Returns the indices of the logins that took. A user appears once, so each factor row is
    /// matched by at most one input row.
    private func loginAll(_ logins: [BulkLogin], kind: String) async throws -> Set<Int> {
        var users: [String] = [], factors: [String] = [], values: [Int64] = [], drifts: [Int64] = []
        var offsets: [Int64] = [], times: [Int64] = [], indices: [Int64] = []
        for login in logins {
            switch login.use {
            case let .timeStep(factor, step, _, verify):
                factors.append(factor); values.append(step); drifts.append(Int64(verify.drift))
                offsets.append(verify.lastOffset.map(Int64.init) ?? Self.noOffset)
            case let .counter(factor, counter, _):
                guard counter < UInt64(Int64.max) else { continue }
                factors.append(factor); values.append(Int64(counter)); drifts.append(0); offsets.append(Self.noOffset)
            case .recoveryCode, .deliveredCode, .keyAssertion:
                continue
            }
            users.append(login.user); times.append(login.atMillis); indices.append(Int64(login.index))
        }
        // The statement's text differs by kind only; the values are all binds.
        let update = kind == "totp" ? """
            UPDATE factors f SET last_step = i.value, drift = i.drift, last_offset = NULLIF(i.last_offset, \(Self.noOffset)), last_used = i.at
            FROM input i WHERE f.user_name = i.user_name AND f.name = i.name AND f.kind = 'totp' AND (f.last_step IS NULL OR f.last_step < i.value)
            """ : """
            UPDATE factors f SET counter = i.value + 1, last_used = i.at
            FROM input i WHERE f.user_name = i.user_name AND f.name = i.name AND f.kind = 'hotp' AND f.counter <= i.value
            """
        let query: PostgresQuery = """
            WITH input AS (
                SELECT * FROM unnest(\(users)::text[], \(factors)::text[], \(values)::bigint[], \(drifts)::bigint[], \(offsets)::bigint[],
                    \(times)::bigint[], \(indices)::bigint[]) AS i(user_name, name, value, drift, last_offset, at, idx)
            ), used AS (
                \(unescaped: update) RETURNING i.idx, f.user_name
            ), cleared AS (
                UPDATE users u SET failures = 0, not_before = NULL, locked_until = NULL FROM used
                WHERE u.name = used.user_name AND (u.failures <> 0 OR u.not_before IS NOT NULL OR u.locked_until IS NOT NULL)
            )
            SELECT idx FROM used
            """
        var applied: Set<Int> = []
        for row in try await connection.run(query) {
            applied.insert(Int(try row.decode(Int64.self)))
        }
        return applied
    }

    /// A NULL last offset in a bigint[] (arrays of optionals do not encode): no real offset is this.
    static let noOffset = Int64.max

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

    /// A TOTP step, HOTP counter, delivered code or key assertion of a login: applied only while no
    /// lock or delay is in force; a refused one is used up all the same and counted as a failure.
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
    /// there is something to clear: one statement. True if the factor took it (fresh step or
    /// counter, a key's counter that advances, or the user's login code of that id, which it deletes).
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
        case let .deliveredCode(channel, id):
            // No factor row: the user's row records the login, as a recovery code's does.
            query = """
                WITH used AS (
                    DELETE FROM delivered_codes WHERE user_name = \(user) AND purpose = 'login' AND id = \(id) AND channel = \(channel.rawValue)
                    RETURNING 1
                ), login AS (
                    UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL, last_success = \(atMillis)
                    WHERE name = \(user) AND EXISTS (SELECT 1 FROM used)
                )
                SELECT count(*) FROM used
                """
        case let .keyAssertion(name, credential, signCount):
            // Only a counter that advances (`Fido2Credential.counterAdvances`, the same rule in SQL):
            // a cloned key's assertion, or a second use of one count, changes nothing (a conflict).
            let count = Int64(signCount)
            query = """
                WITH used AS (
                    UPDATE fido2_keys SET sign_count = \(count), last_used = \(atMillis)
                    WHERE user_name = \(user) AND name = \(name) AND credential_id = \(ByteBuffer(bytes: credential))
                        AND ((sign_count = 0 AND \(count) = 0) OR \(count) > sign_count)
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

    /// Moves the factor's watermark past `use` (a key: its counter, if it advances), or deletes the
    /// delivered code it names, without a login (no last use, no throttle change).
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
        case let .deliveredCode(channel, id):
            return try await connection.run("""
                DELETE FROM delivered_codes WHERE user_name = \(user) AND purpose = 'login' AND id = \(id) AND channel = \(channel.rawValue)
                """).metadata.rows == 1
        case let .keyAssertion(name, credential, signCount):
            let count = Int64(signCount)
            return try await connection.run("""
                UPDATE fido2_keys SET sign_count = \(count)
                WHERE user_name = \(user) AND name = \(name) AND credential_id = \(ByteBuffer(bytes: credential))
                    AND ((sign_count = 0 AND \(count) = 0) OR \(count) > sign_count)
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
