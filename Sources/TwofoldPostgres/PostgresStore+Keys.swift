import Foundation
import NIOCore
import PostgresNIO
import TwofoldCore
import TwofoldStore

/// FIDO2 keys (schema v8), with the SQLite backend's semantics. A user's keys are read with the
/// user, in the same statement (`keysList`); an assertion moves a key's counter in the verify
/// batch. Writes lock the user's row first, as the verify batch does.
extension PostgresStore {
    public func addKey(user: String, _ key: Fido2Credential) async throws {
        try checkOpen()
        try key.checkStorable(user: user)
        try await write(statements: 2) { connection in
            try await Self.lockUsers(creating: [user], connection)
            try await Self.insert(key, user: user, connection)
        }
    }

    /// Inserts the key unless its name (for the user) or its credential id (anywhere) is taken,
    /// which throws the conflict that says which; one statement. A credential id another
    /// transaction is adding waits for it, then counts as taken.
    static func insert(_ key: Fido2Credential, user: String, _ connection: PostgresConnection) async throws {
        let row = try await connection.run("""
            WITH added AS (
                INSERT INTO fido2_keys (user_name, name, credential_id, algorithm, public_key, sign_count, aaguid, added_at, last_used)
                VALUES (\(user), \(key.name), \(ByteBuffer(bytes: key.id)), \(key.algorithm.rawValue), \(ByteBuffer(bytes: key.publicKey)),
                        \(Int64(key.signCount)), \(ByteBuffer(bytes: key.aaguid)), \(key.addedAtMillis), \(key.lastUsedMillis))
                ON CONFLICT DO NOTHING RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM added), EXISTS (SELECT 1 FROM fido2_keys WHERE user_name = \(user) AND name = \(key.name))
            """).first
        guard let (added, named) = try row?.decode((Bool, Bool).self) else { throw StoreError.database("the key was not stored") }
        if added { return }
        throw named ? Fido2Credential.nameTaken(user: user, name: key.name) : Fido2Credential.credentialTaken
    }

    public func removeKey(user: String, name: String?) async throws -> Int {
        try await write(statements: 4) { connection in
            try await Self.lockUser(user, connection)
            let removed = try await connection.run("""
                DELETE FROM fido2_keys WHERE user_name = \(user) AND (\(name)::text IS NULL OR name = \(name))
                """).metadata.rows ?? 0
            // The last factor gone: nothing is left to recover, as removeFactor decides.
            if removed > 0, try await Self.factorCount(user: user, connection) == 0 {
                _ = try await Self.clearEnrollment(user: user, revoking: false, connection)
            }
            return removed
        }
    }

    public func listKeys(after afterUser: String?, limit: Int) async throws -> [UserKey] {
        guard limit > 0 else { try checkOpen(); return [] }
        return try await read { connection in
            try await connection.run(Self.userPage(table: "fido2_keys", alias: "k", columns: Self.keyColumns, order: "k.name",
                                                   after: afterUser, limit: limit)).map(Self.userKey)
        }
    }

    /// The columns `userKey` reads after the user, in its order.
    private static let keyColumns = "k.name, k.credential_id, k.algorithm, k.public_key, k.sign_count, k.aaguid, k.added_at, k.last_used"

    private static func userKey(_ row: PostgresRow) throws -> UserKey {
        let (user, name, id, algorithm, publicKey, count, aaguid, added, used) =
            try row.decode((String, String, ByteBuffer, Int, ByteBuffer, Int64, ByteBuffer, Int64, Int64?).self)
        let key = PostgresKeyJSON(name: name, id: Array(id.readableBytesView), algorithm: algorithm, publicKey: Array(publicKey.readableBytesView),
                                  signCount: count, aaguid: Array(aaguid.readableBytesView), addedAt: added, lastUsed: used)
        return UserKey(user: user, key: try key.credential(user: user))
    }

    /// The user's second factors: OTP factors, verified contacts and keys.
    static func factorCount(user: String, _ connection: PostgresConnection) async throws -> Int64 {
        try await connection.run("""
            SELECT (SELECT count(*) FROM factors WHERE user_name = \(user))
                + (SELECT count(*) FROM contacts WHERE user_name = \(user) AND verified_at IS NOT NULL)
                + (SELECT count(*) FROM fido2_keys WHERE user_name = \(user))
            """).first?.decode(Int64.self) ?? 0
    }

    /// User `u`'s keys as one JSON array in name order (one range of their key; NULL: none), the
    /// bytes in hex. Keys are public: read as they are stored.
    static let keysList = """
        SELECT json_agg(json_build_object('name', name, 'id', encode(credential_id, 'hex'), 'algorithm', algorithm,
                                          'publicKey', encode(public_key, 'hex'), 'signCount', sign_count,
                                          'aaguid', encode(aaguid, 'hex'), 'addedAt', added_at, 'lastUsed', last_used)
                        ORDER BY name)::text AS list
        FROM fido2_keys WHERE user_name = u.name
        """
}

/// One key as `keysList` (hex) or a listing's columns (bytes) give it.
struct PostgresKeyJSON: Decodable {
    var name: String
    var id: [UInt8]
    var algorithm: Int
    var publicKey: [UInt8]
    var signCount: Int64
    var aaguid: [UInt8]
    var addedAt: Int64
    var lastUsed: Int64?

    init(name: String, id: [UInt8], algorithm: Int, publicKey: [UInt8], signCount: Int64, aaguid: [UInt8], addedAt: Int64, lastUsed: Int64?) {
        (self.name, self.id, self.algorithm, self.publicKey) = (name, id, algorithm, publicKey)
        (self.signCount, self.aaguid, self.addedAt, self.lastUsed) = (signCount, aaguid, addedAt, lastUsed)
    }

    private enum CodingKeys: String, CodingKey { case name, id, algorithm, publicKey, signCount, aaguid, addedAt, lastUsed }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), id: try Self.bytes(c, .id), algorithm: try c.decode(Int.self, forKey: .algorithm),
                  publicKey: try Self.bytes(c, .publicKey), signCount: try c.decode(Int64.self, forKey: .signCount),
                  aaguid: try Self.bytes(c, .aaguid), addedAt: try c.decode(Int64.self, forKey: .addedAt),
                  lastUsed: try c.decodeIfPresent(Int64.self, forKey: .lastUsed))
    }

    /// Lower-case hex (PostgreSQL's `encode(…, 'hex')`) as bytes.
    private static func bytes(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> [UInt8] {
        let hex = Array(try c.decode(String.self, forKey: key).utf8)
        let nibble: (UInt8) -> UInt8? = { $0 >= 0x30 && $0 <= 0x39 ? $0 - 0x30 : $0 >= 0x61 && $0 <= 0x66 ? $0 - 0x57 : nil }
        guard hex.count % 2 == 0 else { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "odd hex") }
        return try stride(from: 0, to: hex.count, by: 2).map { i in
            guard let high = nibble(hex[i]), let low = nibble(hex[i + 1]) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not hex")
            }
            return high << 4 | low
        }
    }

    func credential(user: String) throws -> Fido2Credential {
        guard let cose = COSEAlgorithm(rawValue: algorithm) else {
            throw StoreError.corruptRecord(user: user, reason: "key '\(name)' of an unknown algorithm")
        }
        guard let count = UInt32(exactly: signCount) else { throw StoreError.corruptRecord(user: user, reason: "key '\(name)' has a bad counter") }
        return Fido2Credential(name: name, id: id, algorithm: cose, publicKey: publicKey, signCount: count, aaguid: aaguid,
                               addedAtMillis: addedAt, lastUsedMillis: lastUsed)
    }
}
