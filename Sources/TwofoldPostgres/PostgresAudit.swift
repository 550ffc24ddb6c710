import Foundation
import PostgresNIO
import TwofoldStore

/// Audit records in one INSERT however many: postgres-nio binds no arrays of optionals, so the
/// records go as one JSON array, unpacked by the server in order (WITH ORDINALITY).
enum PostgresAudit {
    private struct Row: Encodable {
        let time: Int64
        let action: String
        let user: String?
        let service: String?
        let rhost: String?
        let tty: String?
        let peerUID: Int64?
        let outcome: String
        let reason: String?
        let host: String?

        init(_ record: AuditRecord) {
            time = record.timeMillis
            action = clean(record.action)
            user = record.user.map(clean)
            service = record.service.map(clean)
            rhost = record.rhost.map(clean)
            tty = record.tty.map(clean)
            peerUID = record.peerUID.map(Int64.init)
            outcome = clean(record.outcome)
            reason = record.reason.map(clean)
            host = record.host.map(clean)
        }
    }

    static func insert(_ records: [AuditRecord], _ connection: PostgresConnection) async throws {
        let json = String(decoding: try JSONEncoder().encode(records.map(Row.init)), as: UTF8.self)
        try await connection.run("""
            INSERT INTO audit (time, action, user_name, service, rhost, tty, peer_uid, outcome, reason, host)
            SELECT (e->>'time')::bigint, e->>'action', e->>'user', e->>'service', e->>'rhost', e->>'tty',
                (e->>'peerUID')::bigint, e->>'outcome', e->>'reason', e->>'host'
            FROM jsonb_array_elements(\(json)::jsonb) WITH ORDINALITY AS a(e, ord)
            ORDER BY ord
            """)
    }
}

/// PostgreSQL's text cannot hold NUL (SQLite's can): one would fail the whole batch, so it becomes
/// U+FFFD. Audit fields come from PAM items (service, rhost, tty) that a client chooses.
private func clean(_ text: String) -> String {
    text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
}
