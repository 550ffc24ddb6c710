import Foundation
import GRDB
import TwofoldCrypto
import TwofoldStore

/// The numbered schema migrations and the checks made before any of them runs.
enum Schema {
    /// Migration identifiers this code knows, oldest first. Append only.
    static let migrationIdentifiers = ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"]

    /// The newest schema this code understands.
    static var supported: String { migrationIdentifiers.last! }

    // The rows of `meta` (the key checks, the pepper) are named in StoreMeta, as PostgreSQL's are.

    static let v1 = """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY NOT NULL,
            value BLOB NOT NULL
        ) WITHOUT ROWID;

        -- One row per user the daemon knows: an enrollment (active and/or pending), an admin override,
        -- throttle state, or the first time a policy applied. The active secret and the pending one are
        -- sealed separately (purpose "secret" / "pending").
        CREATE TABLE users (
            name TEXT PRIMARY KEY NOT NULL,
            status TEXT CHECK (status IN ('pending', 'active')),
            method TEXT,
            algorithm TEXT,
            digits INTEGER,
            period INTEGER,
            secret BLOB,
            pending_secret BLOB,
            pending_method TEXT,
            pending_algorithm TEXT,
            pending_digits INTEGER,
            pending_period INTEGER,
            last_step INTEGER,
            counter INTEGER NOT NULL DEFAULT 0,
            drift INTEGER NOT NULL DEFAULT 0,
            last_offset INTEGER,
            failures INTEGER NOT NULL DEFAULT 0,
            not_before INTEGER,
            locked_until INTEGER,
            requirement TEXT NOT NULL DEFAULT 'policy' CHECK (requirement IN ('policy', 'required', 'exempt')),
            enrolled_at INTEGER,
            last_success INTEGER,
            first_required INTEGER
        ) WITHOUT ROWID;

        -- Sealed (salt length ‖ salt ‖ hash) per code; AAD binds user and index.
        CREATE TABLE recovery_codes (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            sealed BLOB NOT NULL,
            used_at INTEGER,
            PRIMARY KEY (user, idx)
        ) WITHOUT ROWID;

        CREATE TABLE settings (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time INTEGER NOT NULL,
            action TEXT NOT NULL,
            user TEXT,
            service TEXT,
            rhost TEXT,
            tty TEXT,
            peer_uid INTEGER,
            outcome TEXT NOT NULL,
            reason TEXT
        );
        CREATE INDEX audit_by_user ON audit(user);
        CREATE INDEX audit_by_time ON audit(time);
        CREATE INDEX audit_by_outcome ON audit(outcome);
        """

    /// v2 slims the audit table, which every verify appends to in its commit: a plain rowid key
    /// instead of AUTOINCREMENT (no sqlite_sequence page to rewrite) and no indexes on time or outcome
    /// (newest-first reads walk the rowid backwards). Each verify commit then writes three pages to
    /// the WAL (the user's row, the audit row, the by-user index) instead of six. Rows keep their ids.
    static let v2 = """
        CREATE TABLE audit_v2 (
            id INTEGER PRIMARY KEY,
            time INTEGER NOT NULL,
            action TEXT NOT NULL,
            user TEXT,
            service TEXT,
            rhost TEXT,
            tty TEXT,
            peer_uid INTEGER,
            outcome TEXT NOT NULL,
            reason TEXT
        );
        INSERT INTO audit_v2 (id, time, action, user, service, rhost, tty, peer_uid, outcome, reason)
            SELECT id, time, action, user, service, rhost, tty, peer_uid, outcome, reason FROM audit ORDER BY id;
        DROP TABLE audit;
        ALTER TABLE audit_v2 RENAME TO audit;
        CREATE INDEX audit_by_user ON audit(user);
        DELETE FROM sqlite_sequence WHERE name = 'audit';
        """

    /// The migrator. `keyCheck` is the sealed known plaintext that "v1" stores with the schema, in
    /// the same transaction; `sealer` re-seals the secrets "v3" binds to their factors and seals
    /// the pepper "v4" stores.
    static func migrator(keyCheck: [UInt8], sealer: Sealer) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: v1)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [StoreMeta.keyCheck, Data(keyCheck)])
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3") { db in
            try migrateToV3(db, sealer: sealer)
        }
        migrator.registerMigration("v4") { db in
            try migrateToV4(db, sealer: sealer)
        }
        migrator.registerMigration("v5") { db in
            try db.execute(sql: v5)
        }
        migrator.registerMigration("v6") { db in
            try db.execute(sql: v6)
        }
        migrator.registerMigration("v7") { db in
            try db.execute(sql: v7)
        }
        migrator.registerMigration("v8") { db in
            try db.execute(sql: v8)
        }
        migrator.registerMigration("v9") { db in
            try db.execute(sql: v9)
        }
        precondition(migrator.migrations == migrationIdentifiers)
        return migrator
    }

    /// Throws `schemaTooNew` if the database records migrations this code does not know.
    static func checkNotNewer(_ db: Database) throws {
        guard try db.tableExists("grdb_migrations") else { return }
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
        let unknown = applied.filter { !migrationIdentifiers.contains($0) }
        if !unknown.isEmpty {
            throw StoreError.schemaTooNew(found: unknown.joined(separator: ","), supported: supported)
        }
    }

    /// Throws `wrongKey` unless a member of `keyring` is a key the database knows (`KeyCheck`);
    /// returns the members it knows. With `required` false a database without the meta table (not
    /// yet migrated) passes, knowing none.
    @discardableResult
    static func checkKeys(_ db: Database, keyring: Keyring, required: Bool) throws -> [KeyID] {
        guard try db.tableExists("meta") else {
            if required { throw StoreError.database("the key check table is missing; the database is damaged") }
            return []
        }
        let stored = try storedKeyChecks(db)
        guard !stored.isEmpty else { throw StoreError.database("the key check record is missing; the database is damaged") }
        return try KeyCheck.knownMembers(of: keyring, stored: stored)
    }

    /// Checks the keyring, then stores a check for each member the database does not know yet;
    /// returns their ids. Another daemon registering the same key at the same time is harmless.
    static func registerKeys(_ db: Database, keyring: Keyring) throws -> [KeyID] {
        try checkKeys(db, keyring: keyring, required: true)
        let new = try KeyCheck.checksToRegister(for: keyring, stored: try storedKeyChecks(db))
        for (id, sealed) in new {
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                           arguments: [StoreMeta.keyCheck(id), Data(sealed)])
        }
        return new.map(\.id)
    }

    /// Every stored key check: the first key's and those of keys brought in since.
    static func storedKeyChecks(_ db: Database) throws -> [[UInt8]] {
        try Data.fetchAll(db, sql: "SELECT value FROM meta WHERE key = ? OR key LIKE ?", arguments: [StoreMeta.keyCheck, StoreMeta.keyCheck + "/%"])
            .map { Array($0) }
    }

    /// Schema v4 gives the recovery pepper an identity of its own, stored sealed (a rekey re-seals
    /// it like any secret), so recovery codes outlive the key. A database from before keeps the
    /// pepper its codes were hashed with, derived from its first key (the one its format 1 key check
    /// opens with); a new one gets 32 random bytes.
    static func migrateToV4(_ db: Database, sealer: Sealer) throws {
        let legacy = KeyCheck.legacyMember(of: sealer.keyring, stored: try storedKeyChecks(db))
        let pepper = try legacy?.recoveryPepper ?? SecretBytes(randomCount: 32)
        try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [StoreMeta.pepper, Data(try StoreMeta.sealPepper(pepper, with: sealer))])
    }

    /// The stored recovery pepper, opened.
    static func pepper(_ db: Database, sealer: Sealer) throws -> SecretBytes {
        let sealed = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [StoreMeta.pepper])
        return try StoreMeta.openPepper(sealed.map { Array($0) }, with: sealer)
    }
}
