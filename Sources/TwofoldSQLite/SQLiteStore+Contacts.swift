import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// Contacts, delivered codes and the record of sends (schema v7). A user's contacts and login code
/// are read with the user (`attachRelated`: one more statement, with the keys); a delivered
/// login code is used up by the verify path (SQLiteStore+Verify.swift).
extension SQLiteStore {
    // MARK: - Contacts

    public func addContact(user: String, _ contact: Contact) async throws {
        try await guarded {
            try contact.checkStorable(user: user)
            try await pool.write { db in
                try Self.ensureUser(user, db)
                try Self.add(contact, user: user, db)
            }
        }
    }

    public func removeContact(user: String, channel: DeliveryChannel, value: String?) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                let removed = try String.fetchAll(db, sql: """
                    DELETE FROM contacts WHERE user = ?1 AND channel = ?2 AND (?3 IS NULL OR value = ?3) RETURNING value
                    """, arguments: [user, channel.rawValue, value])
                try Self.dropCodes(user: user, channel: channel, sentTo: removed, db)
                return removed.count
            }
        }
    }

    public func importContacts(_ contacts: [UserContact]) async throws {
        try await guarded {
            let contacts = try contacts.importable()
            guard !contacts.isEmpty else { return }
            try await pool.write { db in
                for item in contacts {
                    try Self.ensureUser(item.user, db)
                    try Self.add(item.contact, user: item.user, db)
                }
            }
        }
    }

    public func listContacts(after afterUser: String?, limit: Int) async throws -> [UserContact] {
        try await guarded {
            guard limit > 0 else { return [] }
            return try await pool.read { db in
                let rows = try Row.fetchCursor(db, sql: Self.listContactsSQL, arguments: [afterUser ?? "", limit])
                var contacts: [UserContact] = []
                while let row = try rows.next() {
                    contacts.append(UserContact(user: row[0], contact: try Self.decodeContact(row, at: 1, user: row[0])))
                }
                return contacts
            }
        }
    }

    static let listContactsSQL = userPageSQL(table: "contacts", alias: "c", columns: "c.channel, c.value, c.added_at, c.verified_at",
                                             order: "c.channel, c.value")

    /// Creates the user's row if there is none (contacts and codes belong to one).
    static func ensureUser(_ user: String, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO users (name) VALUES (?) ON CONFLICT (name) DO NOTHING").execute(arguments: [user])
    }

    /// Adds `contact` as `addContact` says: a waiting one replaces the user's waiting one of its
    /// channel (an address already verified stays as it is); a verified one replaces both. Codes
    /// sent to a replaced address go with it.
    static func add(_ contact: Contact, user: String, _ db: Database) throws {
        let channel = contact.channel.rawValue
        let replaced: [String]
        if contact.isVerified {
            replaced = try String.fetchAll(db, sql: """
                DELETE FROM contacts WHERE user = ? AND channel = ? AND value <> ? RETURNING value
                """, arguments: [user, channel, contact.value])
            try db.execute(sql: """
                INSERT INTO contacts (user, channel, value, added_at, verified_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (user, channel, value) DO UPDATE SET added_at = excluded.added_at, verified_at = excluded.verified_at
                """, arguments: [user, channel, contact.value, contact.addedMillis, contact.verifiedMillis])
        } else {
            let verified = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM contacts WHERE user = ? AND channel = ? AND value = ? AND verified_at IS NOT NULL
                """, arguments: [user, channel, contact.value]) ?? 0
            guard verified == 0 else { return }
            replaced = try String.fetchAll(db, sql: """
                DELETE FROM contacts WHERE user = ? AND channel = ? AND value <> ? AND verified_at IS NULL RETURNING value
                """, arguments: [user, channel, contact.value])
            try db.execute(sql: """
                INSERT INTO contacts (user, channel, value, added_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (user, channel, value) DO UPDATE SET added_at = excluded.added_at
                """, arguments: [user, channel, contact.value, contact.addedMillis])
        }
        try dropCodes(user: user, channel: contact.channel, sentTo: replaced, db)
    }

    /// Deletes the user's delivered codes (of any purpose) sent by `channel` to one of `addresses`.
    static func dropCodes(user: String, channel: DeliveryChannel, sentTo addresses: [String], _ db: Database) throws {
        for address in addresses {
            try db.execute(sql: "DELETE FROM delivered_codes WHERE user = ? AND channel = ? AND destination = ?",
                           arguments: [user, channel.rawValue, address])
        }
    }

    // MARK: - Delivered codes

    public func storeDeliveredCode(user: String, _ code: DeliveredCodeRecord) async throws {
        try await guarded {
            try await pool.write { db in
                try Self.ensureUser(user, db)
                try db.execute(sql: """
                    INSERT INTO delivered_codes (user, purpose, id, channel, destination, hash, digits, host, service, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (user, purpose) DO UPDATE SET
                        id = excluded.id, channel = excluded.channel, destination = excluded.destination, hash = excluded.hash,
                        digits = excluded.digits, host = excluded.host, service = excluded.service,
                        created_at = excluded.created_at, expires_at = excluded.expires_at
                    """, arguments: [user, code.purpose.rawValue, code.id, code.channel.rawValue, code.destination, Data(code.hash),
                                     code.digits, code.host, code.service, code.createdMillis, code.expiresMillis])
            }
        }
    }

    public func deliveredCode(user: String, purpose: DeliveryPurpose) async throws -> DeliveredCodeRecord? {
        try await guarded {
            try await pool.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT 1, channel, destination, created_at, expires_at, id, hash, digits, host, service
                    FROM delivered_codes WHERE user = ? AND purpose = ?
                    """, arguments: [user, purpose.rawValue]).map { try Self.decodeCode($0, purpose: purpose, user: user) }
            }
        }
    }

    public func confirmContact(user: String, channel: DeliveryChannel, value: String, codeID: Int64, atMillis: Int64) async throws -> Bool {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: """
                    DELETE FROM delivered_codes WHERE user = ?1 AND purpose = 'contact' AND id = ?2 AND channel = ?3 AND destination = ?4
                        AND EXISTS (SELECT 1 FROM contacts WHERE user = ?1 AND channel = ?3 AND value = ?4)
                    """, arguments: [user, codeID, channel.rawValue, value])
                guard db.changesCount == 1 else { return false }
                let replaced = try String.fetchAll(db, sql: """
                    DELETE FROM contacts WHERE user = ? AND channel = ? AND value <> ? AND verified_at IS NOT NULL RETURNING value
                    """, arguments: [user, channel.rawValue, value])
                try db.execute(sql: "UPDATE contacts SET verified_at = ? WHERE user = ? AND channel = ? AND value = ?",
                               arguments: [atMillis, user, channel.rawValue, value])
                try Self.dropCodes(user: user, channel: channel, sentTo: replaced, db)
                try db.execute(sql: "UPDATE users SET failures = 0, not_before = NULL, locked_until = NULL WHERE name = ?", arguments: [user])
                return true
            }
        }
    }

    // MARK: - Sends

    public func recordSend(_ send: DeliverySend) async throws {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO delivery_sends (time, user, channel, destination, host) VALUES (?, ?, ?, ?, ?)",
                               arguments: [send.timeMillis, send.user, send.channel.rawValue, send.destination, send.host])
            }
        }
    }

    public func sendCounts(user: String, destination: String, host: String, since sinceMillis: Int64) async throws -> DeliverySendCounts {
        try await guarded {
            try await pool.read { db in
                // Each count a range of its index.
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT (SELECT count(*) FROM delivery_sends WHERE user = ?1 AND time >= ?4),
                        (SELECT count(*) FROM delivery_sends WHERE destination = ?2 AND time >= ?4),
                        (SELECT count(*) FROM delivery_sends WHERE host = ?3 AND time >= ?4)
                    """, arguments: [user, destination, host, sinceMillis]) else { return DeliverySendCounts(user: 0, destination: 0, host: 0) }
                return DeliverySendCounts(user: row[0], destination: row[1], host: row[2])
            }
        }
    }

    public func pruneDeliveries(before beforeMillis: Int64) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM delivery_sends WHERE time < ?", arguments: [beforeMillis])
                let sends = db.changesCount
                try db.execute(sql: "DELETE FROM delivered_codes WHERE expires_at < ?", arguments: [beforeMillis])
                return sends + db.changesCount
            }
        }
    }

    // MARK: - Reading them with the user

    /// The user's contacts (kind 0) in channel then address order, login code (kind 1) and keys
    /// (kind 2, in name order), in one statement: a range of the contacts' key, a lookup of the
    /// codes' key and a range of the keys' key, merged as each comes in the order asked (no sort:
    /// ordering by the kind too would add one). Each kind's order is all that matters, and a
    /// key's name is unique for its user. A user without keys costs one probe of `fido2_keys`.
    static let attachedSQL = """
        SELECT 0, channel, value, added_at, verified_at, NULL, NULL, NULL, NULL, NULL FROM contacts WHERE user = ?1
        UNION ALL
        SELECT 1, channel, destination, created_at, expires_at, id, hash, digits, host, service
        FROM delivered_codes WHERE user = ?1 AND purpose = 'login'
        UNION ALL
        SELECT 2, name, credential_id, algorithm, public_key, sign_count, aaguid, added_at, last_used, NULL
        FROM fido2_keys WHERE user = ?1
        ORDER BY 2, 3
        """

    /// Fills the record's contacts, login code and keys (a key's last use counts as a login, as an
    /// OTP factor's does).
    static func attachRelated(_ record: inout UserRecord, _ db: Database) throws {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: attachedSQL), arguments: [record.name])
        while let row = try rows.next() {
            switch row[0] as Int {
            case 0: record.contacts.append(try decodeContact(row, at: 1, user: record.name))
            case 1: record.deliveredCode = try decodeCode(row, purpose: .login, user: record.name)
            default: record.appendKey(try decodeKey(row, at: 1, user: record.name))
            }
        }
    }

    /// Fills the records' contacts (a page of users, in name order) with one statement.
    static func attachContacts(_ records: inout [UserRecord], _ db: Database) throws {
        guard let first = records.first?.name, let last = records.last?.name else { return }
        var index: [String: Int] = [:]
        for (i, record) in records.enumerated() { index[record.name] = i }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT user, channel, value, added_at, verified_at FROM contacts WHERE user >= ? AND user <= ? ORDER BY user, channel, value
            """, arguments: [first, last])
        while let row = try rows.next() {
            let user: String = row[0]
            guard let i = index[user] else { continue }
            records[i].contacts.append(try decodeContact(row, at: 1, user: user))
        }
    }

    /// A contact from the columns channel, value, added_at, verified_at starting at `index`.
    static func decodeContact(_ row: Row, at index: Int, user: String) throws -> Contact {
        let text: String = row[index]
        guard let channel = DeliveryChannel(rawValue: text) else {
            throw StoreError.corruptRecord(user: user, reason: "a contact of unknown channel '\(text)'")
        }
        return Contact(channel: channel, value: row[index + 1], addedMillis: row[index + 2], verifiedMillis: row[index + 3])
    }

    /// A code from the columns (any), channel, destination, created_at, expires_at, id, hash,
    /// digits, host, service.
    static func decodeCode(_ row: Row, purpose: DeliveryPurpose, user: String) throws -> DeliveredCodeRecord {
        let text: String = row[1]
        guard let channel = DeliveryChannel(rawValue: text) else {
            throw StoreError.corruptRecord(user: user, reason: "a delivered code of unknown channel '\(text)'")
        }
        guard let hash = row[6] as Data? else { throw StoreError.corruptRecord(user: user, reason: "a delivered code without its hash") }
        return DeliveredCodeRecord(id: row[5], purpose: purpose, channel: channel, destination: row[2], hash: Array(hash), digits: row[7],
                                   host: row[8], service: row[9], createdMillis: row[3], expiresMillis: row[4])
    }
}
