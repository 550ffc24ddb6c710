import Foundation
import Testing
@testable import TwofoldSQLite
import TwofoldPostgres
import TwofoldStore
import TwofoldTestSupport

/// A store backend the conformance suite runs against. Every test here takes one as its argument
/// (`@Test(arguments: Backend.all)`), so it runs once per backend; adding a backend is one entry in
/// `all`.
struct Backend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Opens the store kept under `directory` (a fresh temp directory per test, created by the
    /// test), creating it on first use. Opening the same directory again, before or after closing,
    /// reaches the same data: that is how the tests reopen a store and how they open two stores
    /// on one database. A backend whose data does not live in files derives a database (or
    /// schema) name from `directory`.
    let makeStore: @Sendable (_ directory: String, _ keys: SealingKeys) async throws -> any TwofoldStore
    /// Damage only raw SQL can do, to the data under `directory` (`store` is one open on it).
    let fault: @Sendable (_ directory: String, _ store: any TwofoldStore, _ fault: Fault) async throws -> Void
    /// Everything stored under `directory`, as a value that changes when anything stored changes.
    let fingerprint: @Sendable (_ directory: String) async throws -> String
    /// Opens the same store with a keyring (a key rotation); nil: the backend cannot rotate keys
    /// yet, and `RekeyTests` fails for it.
    var makeKeyringStore: (@Sendable (_ directory: String, _ keyring: Keyring) async throws -> any TwofoldStore)? = nil

    func makeStore(directory: String, keys: SealingKeys) async throws -> any TwofoldStore {
        try await makeStore(directory, keys)
    }

    func makeStore(directory: String, keyring: Keyring) async throws -> any TwofoldStore {
        guard let makeKeyringStore else { throw StoreError.database("backend \(name) cannot open a store with a keyring") }
        return try await makeKeyringStore(directory, keyring)
    }

    var testDescription: String { name }

    /// The embedded SQLite database, one file in the directory.
    static let sqlite = Backend(name: "sqlite", makeStore: { directory, keys in
        try SQLiteStore(path: directory + "/twofold.db", keys: keys)
    }, fault: { _, store, fault in
        guard let store = store as? SQLiteStore else { throw StoreError.database("not an SQLiteStore") }
        try store.testingExecute(fault.sqliteSQL)
    }, fingerprint: { directory in
        // The main file and the WAL, byte for byte.
        ["", "-wal"].map { suffix in
            FileManager.default.contents(atPath: directory + "/twofold.db" + suffix).map { "\($0.count):\($0.hashValue)" } ?? "none"
        }.joined(separator: "/")
    }, makeKeyringStore: { directory, keyring in
        try SQLiteStore(path: directory + "/twofold.db", keyring: keyring)
    })

    /// PostgreSQL straight, a scratch database per directory.
    static let postgres = Backend(name: "postgres", makeStore: { directory, keys in
        try await ScratchDatabases.shared.store(directory, keys: keys, pooled: false)
    }, fault: { directory, _, fault in
        try await ScratchDatabases.shared.psql(fault.postgresSQL, directory)
    }, fingerprint: { directory in
        try await ScratchDatabases.shared.psql(ScratchDatabases.fingerprintSQL, directory)
    }, makeKeyringStore: { directory, keyring in
        try await ScratchDatabases.shared.store(directory, keyring: keyring, pooled: false)
    })

    /// The same through PgBouncer in transaction pooling mode.
    static let pgbouncer = Backend(name: "pgbouncer", makeStore: { directory, keys in
        try await ScratchDatabases.shared.store(directory, keys: keys, pooled: true)
    }, fault: { directory, _, fault in
        try await ScratchDatabases.shared.psql(fault.postgresSQL, directory)
    }, fingerprint: { directory in
        try await ScratchDatabases.shared.psql(ScratchDatabases.fingerprintSQL, directory)
    }, makeKeyringStore: { directory, keyring in
        try await ScratchDatabases.shared.store(directory, keyring: keyring, pooled: true)
    })

    /// Every backend the suite runs against.
    static let all: [Backend] = [.sqlite, .postgres, .pgbouncer]
}

/// A scratch database of the test cluster per test directory, created on first use. They stay until
/// the cluster goes (scripts/run-tests.sh removes it after the run). Without TWOFOLD_PG_URL the
/// PostgreSQL backends fail: they never skip. psql runs off the cooperative pool (`offPool`): dozens
/// of tests creating databases at once would otherwise hold its threads, and the stores of other
/// tests, waiting for them, would run out of time.
final class ScratchDatabases: @unchecked Sendable {
    static let shared = ScratchDatabases()

    private let lock = NSLock()
    private var cluster: PostgresCluster?
    private var databases: [String: String] = [:]

    private func database(_ directory: String) throws -> (PostgresCluster, String) {
        lock.lock()
        defer { lock.unlock() }
        let cluster = try self.cluster ?? PostgresCluster()
        self.cluster = cluster
        if let name = databases[directory] { return (cluster, name) }
        let name = try cluster.createScratchDatabase()
        databases[directory] = name
        return (cluster, name)
    }

    func store(_ directory: String, keys: SealingKeys, pooled: Bool) async throws -> PostgresStore {
        try await store(directory, keyring: Keyring(sealing: keys), pooled: pooled)
    }

    /// A store with wide bounds: the suite runs next to daemons, CLI runs and tests that hold a
    /// thread of the cooperative pool for seconds, and no test here is about the bounds (the
    /// PostgreSQL store tests' outage tests are).
    func store(_ directory: String, keyring: Keyring, pooled: Bool) async throws -> PostgresStore {
        let (cluster, name) = try await offPool { try self.database(directory) }
        var configuration = try PostgresStoreConfiguration(url: pooled ? cluster.bouncerURL(database: name) : cluster.url(database: name),
                                                           password: try cluster.password)
        configuration.connectTimeout = .seconds(10)
        configuration.statementTimeout = .seconds(10)
        return try await PostgresStore(configuration: configuration, keyring: keyring)
    }

    @discardableResult
    func psql(_ sql: String, _ directory: String) async throws -> String {
        try await offPool {
            let (cluster, name) = try self.database(directory)
            return try cluster.psql(sql, url: cluster.url(database: name))
        }
    }

    /// Every table's rows, hashed.
    static let fingerprintSQL = """
        SELECT md5(string_agg(t, '|' ORDER BY n)) FROM (
            SELECT 1, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM twofold_schema x)
            UNION ALL SELECT 2, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM twofold_timeline x)
            UNION ALL SELECT 3, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM users x)
            UNION ALL SELECT 4, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM factors x)
            UNION ALL SELECT 5, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM recovery_codes x)
            UNION ALL SELECT 6, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM settings x)
            UNION ALL SELECT 7, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM audit x)
            UNION ALL SELECT 8, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM twofold_meta x)
            UNION ALL SELECT 9, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM host_certificates x)
            UNION ALL SELECT 10, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM moved_hosts x)
            UNION ALL SELECT 11, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM contacts x)
            UNION ALL SELECT 12, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM delivered_codes x)
            UNION ALL SELECT 13, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM delivery_sends x)
            UNION ALL SELECT 14, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM fido2_keys x)
            UNION ALL SELECT 15, (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM ssh_keys x)
        ) AS s(n, t)
        """
}
