import PostgresNIO
import TwofoldStore

/// Failover detection, inside the verify transaction itself (so it works through PgBouncer, which may
/// hand each transaction another server connection, and needs no session of its own).
///
/// A promoted standby starts a new WAL timeline. Asynchronous replication may have lost the last
/// commits of the old primary: steps and counters accepted there, whose codes could now be accepted
/// again. So the first verify batch that sees a timeline newer than the one stored in
/// `twofold_timeline` moves the stored one (`UPDATE … WHERE timeline < current`: one transaction
/// wins, the others wait on the row and then find nothing to do), and in the same transaction,
/// before its own mutations:
/// - raises every TOTP factor's `last_step` to at least `now / period + max(drift, 0) + failoverTOTPSteps`
///   (the furthest step the verify window can have accepted just before the failover; with the
///   default 1, the window's look-ahead),
/// - advances every HOTP counter by `failoverHOTPLookAhead` (default: the counters the HOTP window
///   spans, look-ahead + 1),
/// - appends an audit record (action "failover", outcome "applied") naming both timelines and how
///   many factors were raised; the store logs a warning once the transaction has committed.
/// A fresh schema stores the timeline seen when it was created. `now` is the batch's time (the
/// latest time its mutations carry).
///
/// The timeline is the WAL insert timeline, the first 8 hex digits of the current WAL file's name.
/// Not `pg_control_checkpoint()`'s `timeline_id`: that is the last checkpoint's, and a promotion
/// writes only an end-of-recovery record and requests a checkpoint (since 9.3); until that
/// checkpoint completes the control file still names the old timeline (pg_rewind's documentation
/// asks for a CHECKPOINT after a promotion for this reason), and batches committed meanwhile would
/// miss the failover. `pg_walfile_name` fails on a standby (recovery in progress): a batch sent to
/// a standby fails, and its logins with it.
///
/// Admin writes do not check the timeline: the next verify batch raises whatever they wrote.
enum PostgresTimeline {
    /// The server's current WAL insert timeline.
    static let currentSQL = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint"

    struct Change: Sendable {
        let from: Int64?
        let to: Int64
    }

    /// The batch's first statement (one round trip): the transaction's settings (SET LOCAL, see
    /// `PostgresConnector.settingsQuery`), and the timeline check. Returns the change when this
    /// transaction moved the stored timeline.
    static func check(_ connection: PostgresConnection, _ configuration: PostgresStoreConfiguration) async throws -> Change? {
        let statement = String(configuration.statementTimeout.milliseconds)
        let idle = String((configuration.connectTimeout + configuration.statementTimeout).milliseconds)
        let result = try await connection.run("""
            WITH settings AS (
                SELECT set_config('synchronous_commit', 'on', true), set_config('statement_timeout', \(statement), true),
                    set_config('idle_in_transaction_session_timeout', \(idle), true)
            ), server AS (
                SELECT \(unescaped: currentSQL) AS timeline
            ), stored AS (
                SELECT timeline FROM twofold_timeline
            ), moved AS (
                UPDATE twofold_timeline t SET timeline = server.timeline FROM server WHERE t.timeline < server.timeline
                RETURNING t.timeline
            )
            SELECT (SELECT count(*) FROM settings), (SELECT timeline FROM stored), (SELECT timeline FROM moved)
            """)
        guard let row = result.first else { throw StoreError.database("the timeline check returned no row") }
        let (_, stored, moved) = try row.decode((Int64, Int64?, Int64?).self)
        return moved.map { Change(from: stored, to: $0) }
    }

    /// Burns what the lost commits may have accepted (one round trip); returns the audit reason.
    static func raise(_ connection: PostgresConnection, _ change: Change, nowMillis: Int64,
                      _ configuration: PostgresStoreConfiguration) async throws -> String {
        let steps = max(configuration.failoverTOTPSteps, 0)
        let counters = max(configuration.failoverHOTPLookAhead, 0)
        let from = change.from.map(String.init) ?? "unknown"
        let result = try await connection.run("""
            WITH totp AS (
                UPDATE factors SET last_step = (\(nowMillis) / 1000) / period + greatest(drift, 0) + \(steps)
                WHERE kind = 'totp' AND period > 0
                    AND (last_step IS NULL OR last_step < (\(nowMillis) / 1000) / period + greatest(drift, 0) + \(steps))
                RETURNING 1
            ), hotp AS (
                UPDATE factors SET counter = CASE WHEN counter > 9223372036854775807 - \(counters) THEN 9223372036854775807
                                                  ELSE counter + \(counters) END
                WHERE kind = 'hotp' AND counter >= 0 AND \(counters) > 0
                RETURNING 1
            )
            INSERT INTO audit (time, action, outcome, reason)
            SELECT \(nowMillis), 'failover', 'applied',
                format('database failed over: timeline %s -> %s; raised %s TOTP and %s HOTP factors',
                       \(from)::text, \(String(change.to))::text, (SELECT count(*) FROM totp), (SELECT count(*) FROM hotp))
            RETURNING reason
            """)
        guard let row = result.first else { throw StoreError.database("the failover audit record was not written") }
        return try row.decode(String.self)
    }
}
