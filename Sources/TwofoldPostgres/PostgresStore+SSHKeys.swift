import Foundation
import NIOCore
import PostgresNIO
import TwofoldCore
import TwofoldStore

/// SSH public keys (schema v9), with the SQLite backend's semantics. Not second factors: never
/// read with the user, never counted. The user's SSH key rule is on the user's row
/// (`setSSHKeyRule` is with the other overrides). Writes lock the users' rows first, as the other writes to a
/// user's credentials do (revoke among them).
extension PostgresStore {
    public func addSSHKey(user: String, _ key: SSHKeyRecord) async throws {
        try await importSSHKeys([UserSSHKey(user: user, key: key)])
    }

    public func removeSSHKey(user: String, name: String?) async throws -> Int {
        try await write(statements: 1) { connection in
            try await connection.run("""
                DELETE FROM ssh_keys WHERE user_name = \(user) AND (\(name)::text IS NULL OR name = \(name))
                """).metadata.rows ?? 0
        }
    }

    /// The hot read: one statement, one range of the primary key's index, already in name order.
    public func sshKeys(user: String) async throws -> [SSHKeyRecord] {
        try await read { connection in try await Self.sshKeys(user: user, connection) }
    }

    static func sshKeys(user: String, _ connection: PostgresConnection) async throws -> [SSHKeyRecord] {
        try await connection.run(sshKeysQuery(user)).map { try Self.sshKey($0.decode((String, String, ByteBuffer, String, Int64).self)) }
    }

    static func sshKeysQuery(_ user: String) -> PostgresQuery {
        "SELECT name, type, blob, comment, added_at FROM ssh_keys WHERE user_name = \(user) ORDER BY name"
    }

    /// sshd's hot read: one statement, the range of the keys' primary key index in name order, the
    /// user's row by its primary key for the rule. No keys: no row, no rule.
    public func authorizedSSHKeys(user: String) async throws -> UserSSHKeys {
        try await read { connection in
            var read = UserSSHKeys()
            for row in try await connection.run(Self.authorizedSSHKeysQuery(user)) {
                let (name, type, blob, comment, added, rule) = try row.decode((String, String, ByteBuffer, String, Int64, String?).self)
                // The user's rule, the same on every row.
                if read.keys.isEmpty { read.rule = try SSHKeyRuleColumn.rule(rule, user: user) }
                read.keys.append(Self.sshKey((name, type, blob, comment, added)))
            }
            return read
        }
    }

    static func authorizedSSHKeysQuery(_ user: String) -> PostgresQuery {
        """
        SELECT k.name, k.type, k.blob, k.comment, k.added_at, u.ssh_key_rule
        FROM ssh_keys k JOIN users u ON u.name = k.user_name WHERE k.user_name = \(user) ORDER BY k.name
        """
    }

    public func listSSHKeys(after afterUser: String?, limit: Int) async throws -> [UserSSHKey] {
        guard limit > 0 else { try checkOpen(); return [] }
        return try await read { connection in
            try await connection.run(Self.userPage(table: "ssh_keys", alias: "s", columns: "s.name, s.type, s.blob, s.comment, s.added_at",
                                                   order: "s.name", after: afterUser, limit: limit)).map { row in
                let (user, name, type, blob, comment, added) = try row.decode((String, String, String, ByteBuffer, String, Int64).self)
                return UserSSHKey(user: user, key: Self.sshKey((name, type, blob, comment, added)))
            }
        }
    }

    /// All or none in two statements however many: the users' rows (created, locked in name order),
    /// the keys. Adding one key is importing it.
    public func importSSHKeys(_ keys: [UserSSHKey]) async throws {
        try checkOpen()
        try keys.checkStorable()
        guard !keys.isEmpty else { return }
        let users = Array(Set(keys.map(\.user))).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        try await write(statements: 2) { connection in
            try await Self.lockUsers(creating: users, connection)
            try await Self.insert(keys, connection)
        }
    }

    /// Inserts the keys (none the same as another: `checkStorable`) unless a name (for its user) or
    /// a blob (anywhere) is taken, which throws the conflict that says which for the first one
    /// refused; one statement. A blob another transaction is adding waits for it, then counts as taken.
    static func insert(_ keys: [UserSSHKey], _ connection: PostgresConnection) async throws {
        let refused = try await connection.run("""
            WITH input AS (
                SELECT * FROM unnest(\(keys.map(\.user))::text[], \(keys.map(\.key.name))::text[], \(keys.map(\.key.key.type))::text[],
                                     \(keys.map { ByteBuffer(bytes: $0.key.key.blob) })::bytea[], \(keys.map(\.key.key.comment))::text[],
                                     \(keys.map(\.key.addedAtMillis))::bigint[])
                    WITH ORDINALITY AS i(user_name, name, type, blob, comment, added_at, n)
            ), added AS (
                INSERT INTO ssh_keys (user_name, name, type, blob, comment, added_at)
                SELECT user_name, name, type, blob, comment, added_at FROM input ORDER BY n
                ON CONFLICT DO NOTHING RETURNING user_name, name
            )
            SELECT i.user_name, i.name, EXISTS (SELECT 1 FROM ssh_keys k WHERE k.user_name = i.user_name AND k.name = i.name)
            FROM input i WHERE NOT EXISTS (SELECT 1 FROM added a WHERE a.user_name = i.user_name AND a.name = i.name)
            ORDER BY i.n LIMIT 1
            """).first
        guard let (user, name, named) = try refused?.decode((String, String, Bool).self) else { return }
        throw named ? SSHKeyRecord.nameTaken(user: user, name: name) : SSHKeyRecord.keyTaken
    }

    private static func sshKey(_ row: (name: String, type: String, blob: ByteBuffer, comment: String, added: Int64)) -> SSHKeyRecord {
        SSHKeyRecord(name: row.name, key: SSHPublicKey(type: row.type, blob: Array(row.blob.readableBytesView), comment: row.comment),
                     addedAtMillis: row.added)
    }
}
