import NIOCore
import PostgresNIO
import TwofoldCrypto
import TwofoldStore

/// What opening the schema found and did.
struct PostgresOpening: Sendable {
    /// The database was empty: the schema was created.
    var created = false
    /// The version the schema was migrated from; nil: none was.
    var migratedFrom: String?
    /// The keyring's keys registered now (new to the database, next to one it knew).
    var registered: [KeyID] = []
    /// The recovery pepper, opened.
    var pepper: SecretBytes
}

/// What a database holds of the schema, read in one statement.
struct PostgresStoredSchema: Sendable {
    var version: String
    /// `twofold_schema.key_check`: the first key's check.
    var keyCheck: [UInt8]
    /// The rows of `twofold_meta` by name; nil without the table (v3).
    var meta: [(key: String, value: [UInt8])]?

    /// Every key check the database holds: v3's one, or v4's rows of `twofold_meta`.
    func keyChecks() throws -> [[UInt8]] {
        guard let meta else { return [keyCheck] }
        let checks = meta.filter { StoreMeta.isKeyCheck($0.key) }.map(\.value)
        guard !checks.isEmpty else { throw StoreError.database("twofold_meta holds no key check: the database is damaged") }
        return checks
    }

    var pepper: [UInt8]? { meta?.first { $0.key == StoreMeta.pepper }?.value }
}

/// Opening the schema with a keyring: the key-check rule (`KeyCheck`) and the pepper, as SQLite's
/// opening applies them, in one transaction.
extension PostgresSchema {
    /// Opens the schema in one transaction under `openLockKey`, so that daemons starting together
    /// create or migrate it once. Refuses a newer schema (`schemaTooNew`) and a keyring with no key
    /// the database knows (`wrongKey`) before writing anything; on an empty database creates every
    /// table, the sealing key's check, a random pepper and the timeline seen now; migrates v3 to
    /// v4, then on to v9; opens the pepper (a previous key removed too early fails here); only then registers the
    /// keyring's other keys. Any failure rolls everything back. Other daemons starting wait while
    /// it holds the lock: 3 round trips, COMMIT included, on a database that needs nothing. Each
    /// statement is bounded by the setup bound, not the login's.
    static func open(_ connector: PostgresConnector, sealer: Sealer) async throws -> PostgresOpening {
        // Sealed before the transaction, to keep it short; stored only on an empty database.
        let keyCheck = try KeyCheck.seal(with: sealer)
        let pepper = try StoreMeta.sealPepper(try SecretBytes(randomCount: 32), with: sealer)
        return try await connector.transaction(statements: 8, statementTimeout: PostgresConnector.setupStatementTimeout) { connection in
            try await connection.run("SELECT pg_advisory_xact_lock(\(openLockKey))")
            var created = false, migratedFrom: String?
            var schema = try await read(connection)
            if let found = schema {
                try checkVersion(found.version)
                if found.version != supported {
                    if found.version == "v3" { try await migrateFromV3(connection, keyCheck: found.keyCheck, sealer: sealer) }
                    try await migrate(connection, from: found.version)
                    migratedFrom = found.version
                }
            } else {
                try await create(connection, keyCheck: keyCheck, pepper: pepper)
                created = true
            }
            // Read back what this transaction wrote.
            if created || migratedFrom != nil { schema = try await read(connection) }
            guard let current = schema else { throw StoreError.database("the schema was not created") }
            let stored = try current.keyChecks()
            _ = try KeyCheck.knownMembers(of: sealer.keyring, stored: stored)
            let opened = try StoreMeta.openPepper(current.pepper, with: sealer)
            let registered = try await register(connection, keyring: sealer.keyring, stored: stored)
            return PostgresOpening(created: created, migratedFrom: migratedFrom, registered: registered, pepper: opened)
        }
    }

    /// The schema's version, its first key's check and the rows of `twofold_meta`; nil on a database
    /// without the schema. Two statements.
    static func read(_ connection: PostgresConnection) async throws -> PostgresStoredSchema? {
        let tables = try await connection.run("SELECT to_regclass('twofold_schema') IS NOT NULL, to_regclass('twofold_meta') IS NOT NULL").first
        guard let (hasSchema, hasMeta) = try tables?.decode((Bool, Bool).self), hasSchema else { return nil }
        let rows = try await connection.run(hasMeta
            ? "SELECT s.version, s.key_check, m.key, m.value FROM twofold_schema s LEFT JOIN twofold_meta m ON true ORDER BY m.key"
            : "SELECT version, key_check, NULL::text, NULL::bytea FROM twofold_schema")
        var schema: PostgresStoredSchema?
        for row in rows {
            let (version, keyCheck, key, value) = try row.decode((String, ByteBuffer, String?, ByteBuffer?).self)
            if schema == nil { schema = PostgresStoredSchema(version: version, keyCheck: Array(keyCheck.readableBytesView), meta: hasMeta ? [] : nil) }
            if let key, let value { schema?.meta?.append((key, Array(value.readableBytesView))) }
        }
        guard let schema else { throw StoreError.database("twofold_schema has no row: the database is damaged") }
        return schema
    }

    /// Every table (in one round trip), the first key's check (in `twofold_schema` too, for older
    /// code), a random pepper, and the timeline seen now.
    private static func create(_ connection: PostgresConnection, keyCheck: [UInt8], pepper: [UInt8]) async throws {
        try await connection.run(block(tablesV3 + [metaTable] + tablesV5 + tablesV6 + tablesV7 + tablesV8 + tablesV9))
        let check = ByteBuffer(bytes: keyCheck)
        try await connection.run("""
            WITH made AS (
                INSERT INTO twofold_schema (version, key_check) VALUES (\(supported), \(check))
            ), meta AS (
                INSERT INTO twofold_meta (key, value) VALUES (\(StoreMeta.keyCheck), \(check)), (\(StoreMeta.pepper), \(ByteBuffer(bytes: pepper)))
                ON CONFLICT (key) DO NOTHING
            )
            INSERT INTO twofold_timeline (timeline) SELECT \(unescaped: PostgresTimeline.currentSQL)
            """)
    }

    /// v3 → v4: `twofold_meta`, with the v3 check and the pepper the database's recovery codes were
    /// hashed with. The code before v4 kept none: it derived it from its one key
    /// (`SealingKeys.recoveryPepper`), the key the v3 check vouches for (format 1 from before key ids,
    /// or format 2), which the keyring must hold (else `wrongKey`, before anything is written).
    private static func migrateFromV3(_ connection: PostgresConnection, keyCheck: [UInt8], sealer: Sealer) async throws {
        guard let id = try KeyCheck.knownMembers(of: sealer.keyring, stored: [keyCheck]).first, let key = sealer.keyring.member(id) else {
            throw StoreError.wrongKey
        }
        let pepper = ByteBuffer(bytes: try StoreMeta.sealPepper(key.recoveryPepper, with: sealer))
        try await connection.run(metaTable)
        try await connection.run("""
            WITH meta AS (
                INSERT INTO twofold_meta (key, value) VALUES (\(StoreMeta.keyCheck), \(ByteBuffer(bytes: keyCheck))), (\(StoreMeta.pepper), \(pepper))
                ON CONFLICT (key) DO NOTHING
            )
            UPDATE twofold_schema SET version = \("v4")
            """)
    }

    /// v4 → v5 (the host registry and the audit's host, `tablesV5`), v5 → v6 (hosts moved in,
    /// `tablesV6`), v6 → v7 (contacts, delivered codes, sends, `tablesV7`), v7 → v8 (FIDO2 keys,
    /// `tablesV8`) and v8 → v9 (SSH keys, `tablesV9`), those `version` still needs, in one round trip.
    private static func migrate(_ connection: PostgresConnection, from version: String) async throws {
        let steps: [[PostgresQuery]] = [tablesV5, tablesV6, tablesV7, tablesV8, tablesV9]
        // v3 became v4 already (migrateFromV3); a version's own tables are there.
        guard let index = ["v4", "v5", "v6", "v7", "v8"].firstIndex(of: version == "v3" ? "v4" : version) else {
            throw StoreError.database("no migration from schema '\(version)'")
        }
        try await connection.run(block(steps[index...].flatMap { $0 } + ["UPDATE twofold_schema SET version = '\(unescaped: supported)'"]))
    }

    /// Statements without parameters as one (a DO block): one round trip.
    private static func block(_ statements: [PostgresQuery]) -> PostgresQuery {
        PostgresQuery(unsafeSQL: "DO $$ BEGIN\n" + statements.map { $0.sql + ";" }.joined(separator: "\n") + "\nEND $$")
    }

    /// Stores a check for each key of the keyring the stored checks do not know (one of them they
    /// must know); their ids. Insert-if-absent: a check already there stays.
    private static func register(_ connection: PostgresConnection, keyring: Keyring, stored: [[UInt8]]) async throws -> [KeyID] {
        let new = try KeyCheck.checksToRegister(for: keyring, stored: stored)
        guard !new.isEmpty else { return [] }
        try await connection.run("""
            INSERT INTO twofold_meta (key, value)
            SELECT * FROM unnest(\(new.map { StoreMeta.keyCheck($0.id) })::text[], \(new.map { ByteBuffer(bytes: $0.sealed) })::bytea[])
            ON CONFLICT (key) DO NOTHING
            """)
        return new.map(\.id)
    }
}
