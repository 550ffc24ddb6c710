import Foundation
import NIOCore
import PostgresNIO
import TwofoldCore
import TwofoldStore

/// Contacts, delivered codes and the record of sends (schema v7), with the SQLite backend's
/// semantics. A user's contacts and login code are read with the user (PostgresStore+Factors.swift,
/// in the same statement); a login code is used up by the verify batch. Writes to a user's contacts
/// and codes lock the user's row first, as the verify batch does (which deletes login codes), so the
/// two wait for each other rather than deadlock.
extension PostgresStore {
    // MARK: - Contacts

    public func addContact(user: String, _ contact: Contact) async throws {
        try checkOpen()
        try contact.checkStorable(user: user)
        try await write(statements: 3) { connection in
            try await Self.lockUsers(creating: [user], connection)
            try await Self.add(contact, user: user, connection)
        }
    }

    public func removeContact(user: String, channel: DeliveryChannel, value: String?) async throws -> Int {
        try await write(statements: 2) { connection in
            try await Self.lockUser(user, connection)
            let removed = try await connection.run("""
                WITH gone AS (
                    DELETE FROM contacts WHERE user_name = \(user) AND channel = \(channel.rawValue)
                        AND (\(value)::text IS NULL OR value = \(value)) RETURNING value
                ), codes AS (
                    DELETE FROM delivered_codes WHERE user_name = \(user) AND channel = \(channel.rawValue)
                        AND destination IN (SELECT value FROM gone)
                )
                SELECT count(*) FROM gone
                """).first?.decode(Int64.self)
            return Int(removed ?? 0)
        }
    }

    /// All or none in three statements however many: the users' rows (created, locked in name
    /// order), the contacts each replaces and the codes sent to them, the contacts.
    public func importContacts(_ contacts: [UserContact]) async throws {
        try checkOpen()
        let contacts = try contacts.importable()
        guard !contacts.isEmpty else { return }
        var users: [String] = []
        for item in contacts where users.last != item.user { users.append(item.user) }
        let names = contacts.map(\.user), channels = contacts.map(\.contact.channel.rawValue), values = contacts.map(\.contact.value)
        let added = contacts.map(\.contact.addedMillis), verified = contacts.map { $0.contact.verifiedMillis ?? $0.contact.addedMillis }
        let frozenUsers = users
        try await write(statements: 3) { connection in
            try await Self.lockUsers(creating: frozenUsers, connection)
            try await connection.run("""
                WITH input AS (
                    SELECT * FROM unnest(\(names)::text[], \(channels)::text[], \(values)::text[]) AS i(user_name, channel, value)
                ), gone AS (
                    DELETE FROM contacts c USING input i
                    WHERE c.user_name = i.user_name AND c.channel = i.channel AND c.value <> i.value
                    RETURNING c.user_name, c.channel, c.value
                )
                DELETE FROM delivered_codes d USING gone g
                WHERE d.user_name = g.user_name AND d.channel = g.channel AND d.destination = g.value
                """)
            try await connection.run("""
                INSERT INTO contacts (user_name, channel, value, added_at, verified_at)
                SELECT * FROM unnest(\(names)::text[], \(channels)::text[], \(values)::text[], \(added)::bigint[], \(verified)::bigint[])
                ON CONFLICT (user_name, channel, value) DO UPDATE SET added_at = excluded.added_at, verified_at = excluded.verified_at
                """)
        }
    }

    public func listContacts(after afterUser: String?, limit: Int) async throws -> [UserContact] {
        guard limit > 0 else { try checkOpen(); return [] }
        return try await read { connection in
            try await connection.run(Self.userPage(table: "contacts", alias: "c", columns: "c.channel, c.value, c.added_at, c.verified_at",
                                                   order: "c.channel, c.value", after: afterUser, limit: limit)).map { row in
                let (user, channel, value, added, verified) = try row.decode((String, String, String, Int64, Int64?).self)
                return UserContact(user: user, contact: Contact(channel: try PostgresDeliveryRows.channel(channel, user: user), value: value,
                                                                addedMillis: added, verifiedMillis: verified))
            }
        }
    }

    /// Creates the users' rows that do not exist and locks them all, in name order (`users` sorted
    /// byte-wise, as COLLATE "C" sorts). One statement: a row this transaction inserts is its own
    /// until it commits.
    static func lockUsers(creating users: [String], _ connection: PostgresConnection) async throws {
        try await connection.run("""
            WITH made AS (INSERT INTO users (name) SELECT unnest(\(users)::text[]) ON CONFLICT (name) DO NOTHING)
            SELECT 1 FROM users WHERE name = ANY(\(users)) ORDER BY name FOR UPDATE
            """)
    }

    /// Adds `contact` as `addContact` says (the user's row locked): a waiting one replaces the
    /// user's waiting one of its channel (an address already verified stays as it is); a verified
    /// one replaces both. Codes sent to a replaced address go with it. The replaced ones go first,
    /// in a statement of their own: the unique indexes check each row as it is written.
    private static func add(_ contact: Contact, user: String, _ connection: PostgresConnection) async throws {
        let channel = contact.channel.rawValue, value = contact.value
        let replaced = contact.isVerified ? "" : "AND verified_at IS NULL"
        let proceed = try await connection.run("""
            WITH verified AS (
                SELECT 1 FROM contacts WHERE user_name = \(user) AND channel = \(channel) AND value = \(value) AND verified_at IS NOT NULL
            ), gone AS (
                DELETE FROM contacts WHERE user_name = \(user) AND channel = \(channel) AND value <> \(value) \(unescaped: replaced)
                    AND (\(contact.isVerified) OR NOT EXISTS (SELECT 1 FROM verified))
                RETURNING value
            ), codes AS (
                DELETE FROM delivered_codes WHERE user_name = \(user) AND channel = \(channel) AND destination IN (SELECT value FROM gone)
            )
            SELECT \(contact.isVerified) OR NOT EXISTS (SELECT 1 FROM verified)
            """).first?.decode(Bool.self) ?? false
        guard proceed else { return }
        try await connection.run("""
            INSERT INTO contacts (user_name, channel, value, added_at, verified_at)
            VALUES (\(user), \(channel), \(value), \(contact.addedMillis), \(contact.verifiedMillis))
            ON CONFLICT (user_name, channel, value) DO UPDATE SET
                added_at = excluded.added_at, verified_at = \(unescaped: contact.isVerified ? "excluded.verified_at" : "contacts.verified_at")
            """)
    }

    // MARK: - Delivered codes

    public func storeDeliveredCode(user: String, _ code: DeliveredCodeRecord) async throws {
        try await write(statements: 2) { connection in
            try await Self.lockUsers(creating: [user], connection)
            try await connection.run("""
                INSERT INTO delivered_codes (user_name, purpose, id, channel, destination, hash, digits, host, service, created_at, expires_at)
                VALUES (\(user), \(code.purpose.rawValue), \(code.id), \(code.channel.rawValue), \(code.destination),
                        \(ByteBuffer(bytes: code.hash)), \(code.digits), \(code.host), \(code.service), \(code.createdMillis), \(code.expiresMillis))
                ON CONFLICT (user_name, purpose) DO UPDATE SET
                    id = excluded.id, channel = excluded.channel, destination = excluded.destination, hash = excluded.hash,
                    digits = excluded.digits, host = excluded.host, service = excluded.service,
                    created_at = excluded.created_at, expires_at = excluded.expires_at
                """)
        }
    }

    public func deliveredCode(user: String, purpose: DeliveryPurpose) async throws -> DeliveredCodeRecord? {
        try await read { connection in
            guard let row = try await connection.run("""
                SELECT \(unescaped: PostgresDeliveryRows.codeColumns) FROM delivered_codes WHERE user_name = \(user) AND purpose = \(purpose.rawValue)
                """).first else { return nil }
            let columns = row.makeRandomAccess()
            return try PostgresDeliveryRows.code(columns, at: 0, id: try columns[0].decode(Int64.self), purpose: purpose, user: user)
        }
    }

    /// The user's row locked; then the code used, the channel's other verified contact dropped
    /// with the codes sent to it and the failures reset, in one statement; then the contact
    /// verified (after the other is gone: the unique index checks each row as it is written).
    public func confirmContact(user: String, channel: DeliveryChannel, value: String, codeID: Int64, atMillis: Int64) async throws -> Bool {
        try await write(statements: 3) { connection in
            try await Self.lockUser(user, connection)
            let used = try await connection.run("""
                WITH used AS (
                    DELETE FROM delivered_codes
                    WHERE user_name = \(user) AND purpose = 'contact' AND id = \(codeID) AND channel = \(channel.rawValue) AND destination = \(value)
                        AND EXISTS (SELECT 1 FROM contacts WHERE user_name = \(user) AND channel = \(channel.rawValue) AND value = \(value))
                    RETURNING 1
                ), gone AS (
                    DELETE FROM contacts
                    WHERE user_name = \(user) AND channel = \(channel.rawValue) AND value <> \(value) AND verified_at IS NOT NULL
                        AND EXISTS (SELECT 1 FROM used)
                    RETURNING value
                ), codes AS (
                    DELETE FROM delivered_codes WHERE user_name = \(user) AND channel = \(channel.rawValue) AND destination IN (SELECT value FROM gone)
                ), cleared AS (
                    UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name = \(user) AND EXISTS (SELECT 1 FROM used)
                )
                SELECT count(*) FROM used
                """).first?.decode(Int64.self)
            guard used == 1 else { return false }
            try await connection.run("""
                UPDATE contacts SET verified_at = \(atMillis) WHERE user_name = \(user) AND channel = \(channel.rawValue) AND value = \(value)
                """)
            return true
        }
    }

    // MARK: - Sends

    public func recordSend(_ send: DeliverySend) async throws {
        try await write { connection in
            try await connection.run("""
                INSERT INTO delivery_sends (time, user_name, channel, destination, host)
                VALUES (\(send.timeMillis), \(send.user), \(send.channel.rawValue), \(send.destination), \(send.host))
                """)
        }
    }

    public func sendCounts(user: String, destination: String, host: String, since sinceMillis: Int64) async throws -> DeliverySendCounts {
        try await read { connection in
            // Each count a range of its index.
            guard let row = try await connection.run("""
                SELECT (SELECT count(*) FROM delivery_sends WHERE user_name = \(user) AND time >= \(sinceMillis)),
                    (SELECT count(*) FROM delivery_sends WHERE destination = \(destination) AND time >= \(sinceMillis)),
                    (SELECT count(*) FROM delivery_sends WHERE host = \(host) AND time >= \(sinceMillis))
                """).first else { return DeliverySendCounts(user: 0, destination: 0, host: 0) }
            let (user, destination, host) = try row.decode((Int64, Int64, Int64).self)
            return DeliverySendCounts(user: Int(user), destination: Int(destination), host: Int(host))
        }
    }

    /// One statement. The users whose codes expire are locked first, in name order, as the verify
    /// batch locks its users before it deletes their codes: a prune and a batch wait for each
    /// other instead of deadlocking over two users' codes.
    public func pruneDeliveries(before beforeMillis: Int64) async throws -> Int {
        try await write { connection in
            let deleted = try await connection.run("""
                WITH sends AS (
                    DELETE FROM delivery_sends WHERE time < \(beforeMillis) RETURNING 1
                ), locked AS (
                    SELECT name FROM users WHERE name IN (SELECT user_name FROM delivered_codes WHERE expires_at < \(beforeMillis))
                    ORDER BY name FOR UPDATE
                ), codes AS (
                    DELETE FROM delivered_codes d USING locked l WHERE d.user_name = l.name AND d.expires_at < \(beforeMillis) RETURNING 1
                )
                SELECT (SELECT count(*) FROM sends) + (SELECT count(*) FROM codes)
                """).first?.decode(Int64.self)
            return Int(deleted ?? 0)
        }
    }
}

/// Delivered codes and channels read back from rows.
enum PostgresDeliveryRows {
    /// A code's columns, as `code` reads them from its first.
    static let codeColumns = "id, channel, destination, hash, digits, host, service, created_at, expires_at"

    /// The code whose `codeColumns` start at `index` (its id already read).
    static func code(_ columns: PostgresRandomAccessRow, at index: Int, id: Int64, purpose: DeliveryPurpose, user: String) throws -> DeliveredCodeRecord {
        guard let hash = try columns[index + 3].decode(ByteBuffer?.self) else {
            throw StoreError.corruptRecord(user: user, reason: "a delivered code without its hash")
        }
        return DeliveredCodeRecord(id: id, purpose: purpose, channel: try channel(try columns[index + 1].decode(String.self), user: user),
                                   destination: try columns[index + 2].decode(String.self), hash: Array(hash.readableBytesView),
                                   digits: try columns[index + 4].decode(Int.self), host: try columns[index + 5].decode(String.self),
                                   service: try columns[index + 6].decode(String.self), createdMillis: try columns[index + 7].decode(Int64.self),
                                   expiresMillis: try columns[index + 8].decode(Int64.self))
    }

    static func channel(_ text: String, user: String) throws -> DeliveryChannel {
        guard let channel = DeliveryChannel(rawValue: text) else {
            throw StoreError.corruptRecord(user: user, reason: "unknown delivery channel '\(text)'")
        }
        return channel
    }
}
