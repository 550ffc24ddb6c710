import NIOCore
import PostgresNIO
import TwofoldStore

/// PostgreSQL's side of a rekey step (ResealWalk.swift): a stage's next rows by keyset pagination,
/// and the conditional write-back.
enum PostgresReseal {
    /// At most `limit` rows of the position's stage after it, in primary-key order (a range scan of
    /// the key, so a step costs the same at the end of a big table as at its start).
    static func rows(after position: ResealPosition, limit: Int, _ connection: PostgresConnection) async throws -> [SealedRow] {
        let stage = position.stage
        return try await connection.run(select(after: position, limit: limit)).map { row in
            let (user, name, index, blob) = try row.decode((String, String, Int, ByteBuffer).self)
            return SealedRow(stage: stage, user: user, name: name, index: index, blob: Array(blob.readableBytesView))
        }
    }

    private static func select(after position: ResealPosition, limit: Int) -> PostgresQuery {
        switch (position.stage, position.user) {
        case (.pepper, _):
            return "SELECT ''::text, ''::text, 0, value FROM twofold_meta WHERE key = \(StoreMeta.pepper) LIMIT \(limit)"
        case (.pendingSecrets, nil):
            return """
                SELECT name, coalesce(pending_name, ''), 0, pending_secret FROM users WHERE pending_secret IS NOT NULL ORDER BY name LIMIT \(limit)
                """
        case (.pendingSecrets, let user?):
            return """
                SELECT name, coalesce(pending_name, ''), 0, pending_secret FROM users
                WHERE pending_secret IS NOT NULL AND name > \(user) ORDER BY name LIMIT \(limit)
                """
        case (.factorSecrets, nil):
            return "SELECT user_name, name, 0, secret FROM factors ORDER BY user_name, name LIMIT \(limit)"
        case (.factorSecrets, let user?):
            return """
                SELECT user_name, name, 0, secret FROM factors WHERE (user_name, name) > (\(user), \(position.name))
                ORDER BY user_name, name LIMIT \(limit)
                """
        case (.recoveryCodes, nil):
            return "SELECT user_name, ''::text, idx, sealed FROM recovery_codes ORDER BY user_name, idx LIMIT \(limit)"
        case (.recoveryCodes, let user?):
            return """
                SELECT user_name, ''::text, idx, sealed FROM recovery_codes WHERE (user_name, idx) > (\(user), \(position.index))
                ORDER BY user_name, idx LIMIT \(limit)
                """
        }
    }

    /// Writes a step's re-sealed blobs back, each only where its row still holds the blob read (a
    /// login or an enrollment that changed it meanwhile wins); how many it wrote. The step's users
    /// are locked first, in name order, as the verify batch and every write that touches a user's
    /// factors lock them, so a rekey and logins wait for each other rather than deadlock. Then one
    /// UPDATE per stage, whatever the number of rows.
    static func write(_ writes: [(row: SealedRow, blob: [UInt8])], _ connection: PostgresConnection) async throws -> Int {
        let users = Array(Set(writes.filter { $0.row.stage != .pepper }.map(\.row.user)))
        if !users.isEmpty {
            try await connection.run("SELECT 1 FROM users WHERE name = ANY(\(users)) ORDER BY name FOR UPDATE")
        }
        var written = 0
        for stage in ResealStage.allCases {
            let rows = writes.filter { $0.row.stage == stage }
            guard !rows.isEmpty else { continue }
            written += try await connection.run(update(stage, rows)).metadata.rows ?? 0
        }
        return written
    }

    private static func update(_ stage: ResealStage, _ rows: [(row: SealedRow, blob: [UInt8])]) -> PostgresQuery {
        let users = rows.map(\.row.user), names = rows.map(\.row.name), indexes = rows.map(\.row.index)
        let old = rows.map { ByteBuffer(bytes: $0.row.blob) }, new = rows.map { ByteBuffer(bytes: $0.blob) }
        switch stage {
        case .pepper:
            return """
                UPDATE twofold_meta m SET value = n.new FROM unnest(\(old)::bytea[], \(new)::bytea[]) AS n(old, new)
                WHERE m.key = \(StoreMeta.pepper) AND m.value = n.old
                """
        case .pendingSecrets:
            return """
                UPDATE users u SET pending_secret = n.new
                FROM unnest(\(users)::text[], \(names)::text[], \(old)::bytea[], \(new)::bytea[]) AS n(name, pending_name, old, new)
                WHERE u.name = n.name AND u.pending_name = n.pending_name AND u.pending_secret = n.old
                """
        case .factorSecrets:
            return """
                UPDATE factors f SET secret = n.new
                FROM unnest(\(users)::text[], \(names)::text[], \(old)::bytea[], \(new)::bytea[]) AS n(user_name, name, old, new)
                WHERE f.user_name = n.user_name AND f.name = n.name AND f.secret = n.old
                """
        case .recoveryCodes:
            return """
                UPDATE recovery_codes r SET sealed = n.new
                FROM unnest(\(users)::text[], \(indexes)::bigint[], \(old)::bytea[], \(new)::bytea[]) AS n(user_name, idx, old, new)
                WHERE r.user_name = n.user_name AND r.idx = n.idx AND r.sealed = n.old
                """
        }
    }
}
