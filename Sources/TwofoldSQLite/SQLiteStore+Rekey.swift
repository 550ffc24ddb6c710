import Foundation
import GRDB
import TwofoldCrypto
import TwofoldStore

/// Key rotation: the recovery pepper, counting sealed values by key, and re-sealing them in short
/// steps. The sealed columns are walked in a fixed order (the pepper, pending secrets, factors'
/// secrets, recovery codes), each by its primary key, so a step's cursor is a position in that walk.
/// Opening and sealing happen outside the write transaction; each value is written back only if
/// it is still the blob that was read.
extension SQLiteStore {
    public func recoveryPepper() async throws -> SecretBytes? { pepper }

    public func sealedValueCounts() async throws -> [SealedValueCount] {
        try await guarded {
            try await pool.read { db in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT substr(b, 1, 1) AS v, CASE WHEN substr(b, 1, 1) = x'02' THEN substr(b, 2, \(KeyID.length)) END AS k, count(*) AS n
                    FROM (SELECT value AS b FROM meta WHERE key = '\(StoreMeta.pepper)'
                          UNION ALL SELECT pending_secret FROM users WHERE pending_secret IS NOT NULL
                          UNION ALL SELECT secret FROM factors
                          UNION ALL SELECT sealed FROM recovery_codes)
                    GROUP BY v, k ORDER BY n DESC, k
                    """)
                return rows.map { row in
                    SealedValueCount(formatVersion: Int((row["v"] as Data?)?.first ?? 0),
                                     keyID: (row["k"] as Data?).flatMap { KeyID(bytes: $0) }, count: row["n"])
                }
            }
        }
    }

    public func resealSecrets(after cursor: String?, limit: Int) async throws -> ResealBatch {
        try await guarded {
            let (rows, next) = try await ResealPosition(cursor: cursor).walk(limit: max(limit, 1)) { position, limit in
                try await pool.read { db in try position.stage.rows(after: position, limit: limit, db) }
            }
            let work = ResealedRows(rows, sealer: sealer)
            var batch = ResealBatch(alreadyCurrent: work.alreadyCurrent, unreadable: work.unreadable.count, next: try next?.cursor())
            for (row, error) in work.unreadable {
                // Left as it is: tampered, or under a key this daemon does not hold.
                logger.error("rekey: a sealed value does not open with the keyring; left as it is",
                             metadata: ["user": "\(row.user)", "column": "\(row.stage)", "error": "\(error)"])
            }
            guard !work.writes.isEmpty else { return batch }
            let writes = work.writes
            let written = try await pool.write { db in
                try writes.reduce(0) { count, write in count + (try write.row.stage.update(write.row, to: Data(write.blob), db) ? 1 : 0) }
            }
            batch.resealed = written
            batch.changed = writes.count - written
            return batch
        }
    }
}

/// SQLite's side of the walk (ResealWalk.swift): how a stage's next rows are read, and the
/// conditional update that writes a re-sealed blob back.
extension ResealStage {
    func rows(after position: ResealPosition, limit: Int, _ db: Database) throws -> [SealedRow] {
        guard limit > 0 else { return [] }
        let (sql, arguments) = select(after: position)
        return try Row.fetchAll(db, sql: sql, arguments: arguments + [limit]).map { row in
            SealedRow(stage: self, user: row[0], name: row[1], index: row[2], blob: Array(row[3] as Data))
        }
    }

    /// The stage's rows after `position` in primary-key order (a range scan of the key: no OR, so
    /// that SQLite uses the index and a step costs the same at the end of a big table as at the start).
    private func select(after position: ResealPosition) -> (String, StatementArguments) {
        guard let user = position.user else {
            switch self {
            case .pepper: return ("SELECT '', '', 0, value FROM meta WHERE key = '\(StoreMeta.pepper)' LIMIT ?", [])
            case .pendingSecrets: return ("SELECT name, pending_name, 0, pending_secret FROM users WHERE pending_secret IS NOT NULL ORDER BY name LIMIT ?", [])
            case .factorSecrets: return ("SELECT user, name, 0, secret FROM factors ORDER BY user, name LIMIT ?", [])
            case .recoveryCodes: return ("SELECT user, '', idx, sealed FROM recovery_codes ORDER BY user, idx LIMIT ?", [])
            }
        }
        switch self {
        case .pepper:
            // One row, read when the stage starts.
            return ("SELECT '', '', 0, value FROM meta WHERE 0 LIMIT ?", [])
        case .pendingSecrets:
            return ("SELECT name, pending_name, 0, pending_secret FROM users WHERE pending_secret IS NOT NULL AND name > ? ORDER BY name LIMIT ?", [user])
        case .factorSecrets:
            return ("SELECT user, name, 0, secret FROM factors WHERE (user, name) > (?, ?) ORDER BY user, name LIMIT ?", [user, position.name])
        case .recoveryCodes:
            return ("SELECT user, '', idx, sealed FROM recovery_codes WHERE (user, idx) > (?, ?) ORDER BY user, idx LIMIT ?", [user, position.index])
        }
    }

    /// Writes `blob` in place of the row's blob if that is still the one read; true if it did.
    func update(_ row: SealedRow, to blob: Data, _ db: Database) throws -> Bool {
        let old = Data(row.blob)
        switch self {
        case .pepper:
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = ? AND value = ?", arguments: [blob, StoreMeta.pepper, old])
        case .pendingSecrets:
            try db.execute(sql: "UPDATE users SET pending_secret = ? WHERE name = ? AND pending_name = ? AND pending_secret = ?",
                           arguments: [blob, row.user, row.name, old])
        case .factorSecrets:
            try db.execute(sql: "UPDATE factors SET secret = ? WHERE user = ? AND name = ? AND secret = ?", arguments: [blob, row.user, row.name, old])
        case .recoveryCodes:
            try db.execute(sql: "UPDATE recovery_codes SET sealed = ? WHERE user = ? AND idx = ? AND sealed = ?", arguments: [blob, row.user, row.index, old])
        }
        return db.changesCount == 1
    }
}
