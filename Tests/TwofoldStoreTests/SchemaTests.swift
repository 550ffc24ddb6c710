import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldStore

@Suite struct SchemaTests {
    @Test func newerSchemaIsRefusedAndChangesNothing() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try openStore(dir, keys: keys)
            try await enroll(store, "alice")
            try store.testingExecute("INSERT INTO grdb_migrations (identifier) VALUES ('v2')")
            try await store.close()
            let before = databaseFiles(dir)

            #expect(throws: StoreError.schemaTooNew(found: "v2", supported: "v1")) { try openStore(dir, keys: keys) }
            #expect(databaseFiles(dir)[""] == before[""])
            #expect((databaseFiles(dir)["-wal"]?.count ?? 0) == 0)
            // A wrong key on a newer schema reports the schema first: the key check format may have changed.
            let other = try makeKeys(in: dir, name: "other")
            #expect(throws: StoreError.schemaTooNew(found: "v2", supported: "v1")) { try openStore(dir, keys: other) }
            #expect(databaseFiles(dir)[""] == before[""])
            #expect((databaseFiles(dir)["-wal"]?.count ?? 0) == 0)
        }
    }

    @Test func writerIsFullSyncWALWithSchemaV1() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            // GRDB sets NORMAL when it enables WAL; the store must have put FULL back.
            #expect(try store.writerSynchronousMode() == 2)
            #expect(try store.testingCount("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'") == 1)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v1'") == 1)
            #expect(try store.testingCount("SELECT count(*) FROM meta WHERE key = 'key_check'") == 1)
            try await store.close()

            // Reopening keeps one v1 and one key check, and the file is private.
            let again = try openStore(dir, keys: try makeKeys(in: dir))
            #expect(try again.testingCount("SELECT count(*) FROM grdb_migrations") == 1)
            try await again.close()
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/twofold.db")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func notADatabaseIsAClearErrorAndIsLeftAlone() async throws {
        try await withTempDir { dir in
            let path = dir + "/twofold.db"
            let junk = Data(repeating: 0x5a, count: 4096)
            #expect(FileManager.default.createFile(atPath: path, contents: junk))
            let error = #expect(throws: StoreError.self) { try openStore(dir, keys: try makeKeys(in: dir)) }
            guard case .database? = error else {
                Issue.record("expected .database, got \(String(describing: error))")
                return
            }
            #expect(FileManager.default.contents(atPath: path) == junk)
        }
    }

    @Test func closedStoreRefusesCalls() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await store.close()
            try await store.close()
            await #expect(throws: StoreError.self) { try await store.user("alice") }
            await #expect(throws: StoreError.self) { try await store.commit([accept("alice", step: 1)]) }
            await #expect(throws: StoreError.self) { try await store.setSetting("a", value: "b") }
        }
    }
}
