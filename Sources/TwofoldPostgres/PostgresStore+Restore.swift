import PostgresNIO
import TwofoldCore
import TwofoldStore

/// The restore rules (`RestoreRules`) on a PostgreSQL database the admin restored (pg_restore, a
/// base backup): the same as SQLite's, in one transaction, the arithmetic TwofoldCore's.
extension PostgresStore {
    public func secureRestoredStore(_ rules: RestoreRules) async throws -> RestoreReplayResult {
        try await write(statements: 8) { connection in
            var result = RestoreReplayResult()
            result.users = try await connection.run("SELECT count(*) FROM users").first?.decode(Int.self) ?? 0
            result.usersWithFactors = try await connection.run("SELECT count(DISTINCT user_name) FROM factors").first?.decode(Int.self) ?? 0
            var totp: [RestoredFactor] = [], hotp: [RestoredFactor] = []
            for row in try await connection.run("SELECT user_name, name, kind, period, last_step, counter FROM factors") {
                let (user, name, kind, period, lastStep, counter) = try row.decode((String, String, String, Int, Int64?, Int64).self)
                result.factors += 1
                let factor = RestoredFactor(user: user, name: name, method: OTPMethod(rawValue: kind) ?? .totp, period: period,
                                            verify: VerifyState(lastStep: lastStep, counter: UInt64(bitPattern: counter)))
                guard let next = factor.restored(rules) else { continue }
                var raised = factor
                raised.verify = next
                if factor.method == .totp { totp.append(raised) } else { hotp.append(raised) }
            }
            try await Self.update(totp: totp, hotp: hotp, connection)
            result.watermarksRaised = totp.count
            result.countersAdvanced = hotp.count
            result.recoverySets = try await connection.run(
                "SELECT count(DISTINCT user_name) FROM recovery_codes WHERE used_at IS NULL").first?.decode(Int.self) ?? 0
            if rules.invalidateRecoveryCodes {
                try await connection.run("UPDATE recovery_codes SET used_at = \(rules.nowMillis) WHERE used_at IS NULL")
                result.recoverySetsInvalidated = result.recoverySets
            }
            return result
        }
    }

    /// The raised watermarks and counters, one statement each, whatever the number of factors.
    private static func update(totp: [RestoredFactor], hotp: [RestoredFactor], _ connection: PostgresConnection) async throws {
        if !totp.isEmpty {
            let users = totp.map(\.user), names = totp.map(\.name), steps = totp.map { $0.verify.lastStep ?? .min }
            try await connection.run("""
                UPDATE factors f SET last_step = n.step
                FROM unnest(\(users)::text[], \(names)::text[], \(steps)::bigint[]) AS n(user_name, name, step)
                WHERE f.user_name = n.user_name AND f.name = n.name
                """)
        }
        if !hotp.isEmpty {
            let users = hotp.map(\.user), names = hotp.map(\.name), counters = hotp.map { Int64(bitPattern: $0.verify.counter) }
            try await connection.run("""
                UPDATE factors f SET counter = n.counter
                FROM unnest(\(users)::text[], \(names)::text[], \(counters)::bigint[]) AS n(user_name, name, counter)
                WHERE f.user_name = n.user_name AND f.name = n.name
                """)
        }
    }
}
