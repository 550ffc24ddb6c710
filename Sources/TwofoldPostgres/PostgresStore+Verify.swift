import Foundation
import Logging
import PostgresNIO
import TwofoldCore
import TwofoldStore

/// The verify path: one transaction per group-commit batch, so that a code is accepted once across
/// every daemon on the database.
///
///     BEGIN
///     settings (SET LOCAL synchronous_commit = on, statement and idle timeouts) + timeline check
///     [on a new timeline: raise every watermark + audit "failover"]        (PostgresTimeline)
///     SELECT … FROM users WHERE name = ANY(batch's users) ORDER BY name FOR UPDATE
///     every user's first login of the batch, TOTP in one statement, HOTP in one (PostgresVerifyBatch)
///     the rest, one statement each, in order, with the SQLite backend's semantics
///     one INSERT of the batch's audit records, in order
///     COMMIT
///
/// Round trips: a batch of logins of different users ([accept, auditAttempt] each, the common case)
/// takes 6 whatever its size (7 with TOTP and HOTP logins); each further change of a user already
/// changed in the batch, each failure and each refused login adds one (a refused login whose throttle
/// changes: 2); + 1 when the timeline moved; − 1 without users, − 1 without audit records. A batch
/// has at most `maximumBatch` mutations.
///
/// Locking every user of the batch first, in name order, makes daemons wait for each other instead
/// of deadlocking, and gives the throttle state the lock and delay are decided from
/// (`Throttle.commitDecision` / `afterFailure`, as SQLite decides them); a transaction then touches
/// only rows of the users it holds. The results are handed out only after COMMIT answered COMMIT:
/// any failure, the connection lost during COMMIT included (outcome unknown), fails the whole batch
/// with a `StoreError`, which callers turn into a failure verdict.
extension PostgresStore {
    static func applyBatch(_ mutations: [StoreMutation], connector: PostgresConnector,
                           logger: Logger) async throws(StoreError) -> [MutationResult] {
        let configuration = connector.configuration
        let users = lockedUsers(mutations)
        let now = batchTime(mutations)
        do {
            let (results, failover) = try await connector.transaction(settings: false) { connection in
                var failover: String?
                if let change = try await PostgresTimeline.check(connection, configuration) {
                    failover = try await PostgresTimeline.raise(connection, change, nowMillis: now, configuration)
                }
                var batch = PostgresVerifyBatch(connection: connection, throttles: try await lockUsers(users, connection))
                let results = try await batch.apply(mutations)
                try await batch.writeAudit()
                return (results, failover)
            }
            if let failover { logger.warning("PostgreSQL failover detected; replay watermarks raised", metadata: ["audit": "\(failover)"]) }
            return results
        } catch {
            let mapped = error as? StoreError ?? .database(String(describing: type(of: error)))
            // An outage is logged once by the connector, not per batch.
            if !connector.isFailing {
                logger.error("store batch failed", metadata: ["mutations": "\(mutations.count)", "error": "\(mapped)"])
            }
            throw mapped
        }
    }

    /// The users whose rows the batch reads or writes.
    static func lockedUsers(_ mutations: [StoreMutation]) -> [String] {
        var users: Set<String> = []
        for mutation in mutations {
            switch mutation {
            case .accept(let user, _, _, _), .consume(let user, _), .recordFailure(let user, _, _): users.insert(user)
            case .audit, .auditAttempt: break
            }
        }
        return users.sorted()
    }

    /// The batch's time: the latest its mutations carry (the clock if they carry none).
    static func batchTime(_ mutations: [StoreMutation]) -> Int64 {
        let times = mutations.compactMap { mutation -> Int64? in
            switch mutation {
            case .accept(_, _, let at, _), .recordFailure(_, let at, _): at
            case .audit(let record), .auditAttempt(let record): record.timeMillis
            case .consume: nil
            }
        }
        return times.max() ?? Int64(Date().timeIntervalSince1970 * 1_000)
    }

    /// Locks the users' rows in name order; their throttle states by name (absent: no such user).
    static func lockUsers(_ users: [String], _ connection: PostgresConnection) async throws -> [String: ThrottleState] {
        guard !users.isEmpty else { return [:] }
        let rows = try await connection.run("""
            SELECT name, failures, not_before, locked_until FROM users WHERE name = ANY(\(users)) ORDER BY name FOR UPDATE
            """)
        var states: [String: ThrottleState] = [:]
        for row in rows {
            let (name, failures, notBefore, lockedUntil) = try row.decode((String, Int, Int64?, Int64?).self)
            states[name] = ThrottleState(failures: failures, notBeforeMillis: notBefore, lockedUntilMillis: lockedUntil)
        }
        return states
    }
}
