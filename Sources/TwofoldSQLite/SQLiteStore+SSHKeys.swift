import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// SSH public keys (schema v9). Not second factors: never read with the user, never counted. The
/// user's SSH key rule is on the user's row (`setSSHKeyRule` is with the other overrides).
extension SQLiteStore {
    public func addSSHKey(user: String, _ key: SSHKeyRecord) async throws {
        try await guarded {
            try key.checkStorable(user: user)
            try await pool.write { db in
                try Self.ensureUser(user, db)
                try Self.insert(key, user: user, db)
            }
        }
    }

    /// Inserts the key unless its name (for the user) or its blob (anywhere) is taken, which throws
    /// the conflict that says which (the writer is alone: nothing changes between).
    static func insert(_ key: SSHKeyRecord, user: String, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO ssh_keys (user, name, type, blob, comment, added_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """).execute(arguments: [user, key.name, key.key.type, Data(key.key.blob), key.key.comment, key.addedAtMillis])
        guard db.changesCount == 0 else { return }
        let named = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM ssh_keys WHERE user = ? AND name = ?)",
                                      arguments: [user, key.name]) ?? false
        throw named ? SSHKeyRecord.nameTaken(user: user, name: key.name) : SSHKeyRecord.keyTaken
    }

    public func removeSSHKey(user: String, name: String?) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM ssh_keys WHERE user = ?1 AND (?2 IS NULL OR name = ?2)", arguments: [user, name])
                return db.changesCount
            }
        }
    }

    public func sshKeys(user: String) async throws -> [SSHKeyRecord] {
        try await guarded {
            try await pool.read { db in try Self.sshKeys(user: user, db) }
        }
    }

    static func sshKeys(user: String, _ db: Database) throws -> [SSHKeyRecord] {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: sshKeysSQL), arguments: [user])
        var keys: [SSHKeyRecord] = []
        while let row = try rows.next() { keys.append(try decodeSSHKey(row, at: 0, user: user)) }
        return keys
    }

    /// The hot read: one range of the primary key (user, name), already in name order (no sort).
    static let sshKeysSQL = "SELECT \(sshKeyColumns) FROM ssh_keys s WHERE s.user = ? ORDER BY s.name"

    public func authorizedSSHKeys(user: String) async throws -> UserSSHKeys {
        try await guarded {
            try await pool.read { db in
                let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.authorizedSSHKeysSQL), arguments: [user])
                var read = UserSSHKeys()
                while let row = try rows.next() {
                    // The user's rule, the same on every row.
                    if read.keys.isEmpty { read.rule = try SSHKeyRuleColumn.rule(row[5], user: user) }
                    read.keys.append(try Self.decodeSSHKey(row, at: 0, user: user))
                }
                return read
            }
        }
    }

    /// sshd's hot read: the range of the keys' primary key (user, name), in name order, and the
    /// user's row by its primary key for the rule; one statement. No keys: no row, no rule.
    static let authorizedSSHKeysSQL = """
        SELECT \(sshKeyColumns), u.ssh_key_rule FROM ssh_keys s JOIN users u ON u.name = s.user WHERE s.user = ? ORDER BY s.name
        """

    public func listSSHKeys(after afterUser: String?, limit: Int) async throws -> [UserSSHKey] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                let rows = try Row.fetchCursor(db, sql: Self.listSSHKeysSQL, arguments: [afterUser ?? "", limit])
                var keys: [UserSSHKey] = []
                while let row = try rows.next() {
                    keys.append(UserSSHKey(user: row[0], key: try Self.decodeSSHKey(row, at: 1, user: row[0])))
                }
                return keys
            }
        }
    }

    static let listSSHKeysSQL = userPageSQL(table: "ssh_keys", alias: "s", columns: sshKeyColumns, order: "s.name")

    /// All or none in one write transaction, as `addSSHKey` each.
    public func importSSHKeys(_ keys: [UserSSHKey]) async throws {
        try await guarded {
            try keys.checkStorable()
            guard !keys.isEmpty else { return }
            try await pool.write { db in
                for item in keys {
                    try Self.ensureUser(item.user, db)
                    try Self.insert(item.key, user: item.user, db)
                }
            }
        }
    }

    /// The columns `decodeSSHKey` reads, in its order.
    static let sshKeyColumns = "s.name, s.type, s.blob, s.comment, s.added_at"

    static func decodeSSHKey(_ row: Row, at index: Int, user: String) throws -> SSHKeyRecord {
        let name: String = row[index]
        guard let type = row[index + 1] as String?, let blob = row[index + 2] as Data?, let comment = row[index + 3] as String? else {
            throw StoreError.corruptRecord(user: user, reason: "SSH key '\(name)' is incomplete")
        }
        return SSHKeyRecord(name: name, key: SSHPublicKey(type: type, blob: Array(blob), comment: comment), addedAtMillis: row[index + 4])
    }
}
