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
                    FROM (SELECT value AS b FROM meta WHERE key = '\(Schema.pepperName)'
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
            let start = try ResealPosition(cursor: cursor)
            let (rows, next) = try await pool.read { db in try Self.sealedRows(after: start, limit: max(limit, 1), db) }
            var batch = ResealBatch(next: try next?.cursor())
            var writes: [(row: SealedRow, blob: Data)] = []
            for row in rows {
                do {
                    if let blob = try row.stage.reseal(row, sealer: sealer) {
                        writes.append((row, Data(blob)))
                    } else {
                        batch.alreadyCurrent += 1
                    }
                } catch {
                    // Left as it is: tampered, or under a key this daemon does not hold.
                    batch.unreadable += 1
                    logger.error("rekey: a sealed value does not open with the keyring; left as it is",
                                 metadata: ["user": "\(row.user)", "column": "\(row.stage)", "error": "\(error)"])
                }
            }
            guard !writes.isEmpty else { return batch }
            let frozen = writes
            let written = try await pool.write { db in
                try frozen.reduce(0) { count, write in count + (try write.row.stage.update(write.row, to: write.blob, db) ? 1 : 0) }
            }
            batch.resealed = written
            batch.changed = writes.count - written
            return batch
        }
    }

    /// Up to `limit` sealed values after `position`, walking on through the later stages; and the
    /// position to continue from (nil: the walk reached the end).
    static func sealedRows(after position: ResealPosition, limit: Int, _ db: Database) throws -> ([SealedRow], ResealPosition?) {
        var rows: [SealedRow] = []
        var position = position
        while true {
            rows += try position.stage.rows(after: position, limit: limit - rows.count, db)
            if rows.count >= limit, let last = rows.last { return (rows, ResealPosition(last)) }
            guard let later = ResealStage(rawValue: position.stage.rawValue + 1) else { return (rows, nil) }
            position = ResealPosition(stage: later)
        }
    }
}

/// One sealed value as read for a rekey: where it is and the blob.
struct SealedRow: Sendable {
    var stage: ResealStage
    var user: String
    /// The factor's name (factors, pending secrets); "" elsewhere.
    var name: String
    /// The recovery code's index; 0 elsewhere.
    var index: Int
    var blob: [UInt8]
}

/// A place in the walk: inside `stage`, after the row with that key (nil: from the stage's start).
struct ResealPosition: Codable, Equatable {
    var stage: ResealStage
    var user: String?
    var name = ""
    var index = 0

    init(stage: ResealStage) { self.stage = stage }

    init(_ row: SealedRow) {
        stage = row.stage
        user = row.user
        name = row.name
        index = row.index
    }

    /// From a cursor this store handed out; nil: the start of the walk.
    init(cursor: String?) throws {
        guard let cursor else {
            self.init(stage: .pepper)
            return
        }
        do {
            self = try JSONDecoder().decode(ResealPosition.self, from: Data(cursor.utf8))
        } catch {
            throw StoreError.database("not a rekey cursor of this store")
        }
    }

    func cursor() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }
}

/// The sealed columns, in the order of the walk: what each row's AAD names, how to read the next
/// rows, and the conditional update that writes a re-sealed blob back.
enum ResealStage: Int, Codable, Sendable {
    case pepper, pendingSecrets, factorSecrets, recoveryCodes

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
            case .pepper: return ("SELECT '', '', 0, value FROM meta WHERE key = '\(Schema.pepperName)' LIMIT ?", [])
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

    /// The blob sealed under the sealing key; nil when it already is. Throws when it does not open.
    func reseal(_ row: SealedRow, sealer: Sealer) throws -> [UInt8]? {
        switch self {
        case .pepper: try sealer.reseal(row.blob, .pepper, user: KeyCheck.owner)
        case .pendingSecrets: try sealer.reseal(row.blob, .pendingFactor, user: row.user, factor: row.name)
        case .factorSecrets: try sealer.reseal(row.blob, .factor, user: row.user, factor: row.name)
        case .recoveryCodes: try sealer.reseal(row.blob, .recovery, user: row.user, index: row.index)
        }
    }

    /// Writes `blob` in place of the row's blob if that is still the one read; true if it did.
    func update(_ row: SealedRow, to blob: Data, _ db: Database) throws -> Bool {
        let old = Data(row.blob)
        switch self {
        case .pepper:
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = ? AND value = ?", arguments: [blob, Schema.pepperName, old])
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
