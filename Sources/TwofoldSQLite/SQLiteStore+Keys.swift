import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// FIDO2 keys (schema v8). A user's keys are read with the user (`attachRelated`, in the
/// statement of the contacts); an assertion moves a key's counter in the verify path
/// (SQLiteStore+Verify.swift).
extension SQLiteStore {
    public func addKey(user: String, _ key: Fido2Credential) async throws {
        try await guarded {
            try key.checkStorable(user: user)
            try await pool.write { db in
                try Self.ensureUser(user, db)
                try Self.insert(key, user: user, db)
            }
        }
    }

    /// Inserts the key unless its name (for the user) or its credential id (anywhere) is taken,
    /// which throws the conflict that says which (the writer is alone: nothing changes between).
    static func insert(_ key: Fido2Credential, user: String, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO fido2_keys (user, name, credential_id, algorithm, public_key, sign_count, aaguid, added_at, last_used)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """, arguments: [user, key.name, Data(key.id), key.algorithm.rawValue, Data(key.publicKey), Int64(key.signCount),
                             Data(key.aaguid), key.addedAtMillis, key.lastUsedMillis])
        guard db.changesCount == 0 else { return }
        let named = try Int.fetchOne(db, sql: "SELECT count(*) FROM fido2_keys WHERE user = ? AND name = ?", arguments: [user, key.name]) ?? 0
        throw named > 0 ? Fido2Credential.nameTaken(user: user, name: key.name) : Fido2Credential.credentialTaken
    }

    public func removeKey(user: String, name: String?) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM fido2_keys WHERE user = ?1 AND (?2 IS NULL OR name = ?2)", arguments: [user, name])
                let removed = db.changesCount
                // The last factor gone: nothing is left to recover, as removeFactor decides.
                if removed > 0, try Self.factorCount(user: user, db) == 0 { try Self.clearEnrollment(user: user, db) }
                return removed
            }
        }
    }

    public func listKeys(after afterUser: String?, limit: Int) async throws -> [UserKey] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                let rows = try Row.fetchCursor(db, sql: Self.listKeysSQL, arguments: [afterUser ?? "", limit])
                var keys: [UserKey] = []
                while let row = try rows.next() {
                    keys.append(UserKey(user: row[0], key: try Self.decodeKey(row, at: 1, user: row[0])))
                }
                return keys
            }
        }
    }

    static let listKeysSQL = userPageSQL(table: "fido2_keys", alias: "k", columns: keyColumns, order: "k.name")

    /// The columns `decodeKey` reads, in its order.
    static let keyColumns = "k.name, k.credential_id, k.algorithm, k.public_key, k.sign_count, k.aaguid, k.added_at, k.last_used"

    /// Fills the records' keys (a page of users, in name order) with one statement.
    static func attachKeys(_ records: inout [UserRecord], _ db: Database) throws {
        guard let first = records.first?.name, let last = records.last?.name else { return }
        var index: [String: Int] = [:]
        for (i, record) in records.enumerated() { index[record.name] = i }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT k.user, \(keyColumns) FROM fido2_keys k WHERE k.user >= ? AND k.user <= ? ORDER BY k.user, k.name
            """, arguments: [first, last])
        while let row = try rows.next() {
            let user: String = row[0]
            guard let i = index[user] else { continue }
            records[i].appendKey(try decodeKey(row, at: 1, user: user))
        }
    }

    /// A key from the columns name, credential_id, algorithm, public_key, sign_count, aaguid,
    /// added_at, last_used starting at `index`.
    static func decodeKey(_ row: Row, at index: Int, user: String) throws -> Fido2Credential {
        let name: String = row[index]
        guard let algorithm = (row[index + 2] as Int?).flatMap(COSEAlgorithm.init(rawValue:)) else {
            throw StoreError.corruptRecord(user: user, reason: "key '\(name)' of an unknown algorithm")
        }
        guard let id = row[index + 1] as Data?, let publicKey = row[index + 3] as Data?, let aaguid = row[index + 5] as Data?,
              let count = (row[index + 4] as Int64?).flatMap(UInt32.init(exactly:)) else {
            throw StoreError.corruptRecord(user: user, reason: "key '\(name)' is incomplete")
        }
        return Fido2Credential(name: name, id: Array(id), algorithm: algorithm, publicKey: Array(publicKey), signCount: count,
                               aaguid: Array(aaguid), addedAtMillis: row[index + 6], lastUsedMillis: row[index + 7])
    }

    /// The user's second factors: OTP factors, verified contacts and keys.
    static func factorCount(user: String, _ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: """
            SELECT (SELECT count(*) FROM factors WHERE user = ?1)
                + (SELECT count(*) FROM contacts WHERE user = ?1 AND verified_at IS NOT NULL)
                + (SELECT count(*) FROM fido2_keys WHERE user = ?1)
            """, arguments: [user]) ?? 0
    }
}
