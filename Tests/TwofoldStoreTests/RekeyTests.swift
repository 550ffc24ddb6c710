import Foundation
import GRDB
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// Key rotation as the SQLite file holds it: a database from before key ids (the v2 fixture, all
/// format 1) rotated to a new key and its old key removed; the key checks in `meta`; a value
/// changed between a step's read and its write; an unknown keyring leaves the file untouched.
@Suite struct SQLiteRekeyTests {

    @Test func aDatabaseFromBeforeKeyIdsRotatesAndKeepsItsPepperAndEverySecret() async throws {
        try await withTempDir { dir in
            for name in ["twofold.db", "key"] {
                try FileManager.default.copyItem(atPath: SchemaV3Tests.fixture + "/" + name, toPath: dir + "/" + name)
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/" + name)
            }
            let old = try makeKeys(in: dir), new = try makeKeys(in: dir, name: "new")
            // Migrated with both keys at once: the pepper is the old key's derived one, the new key is registered.
            let store = try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: new, previous: [old]))
            #expect(store.pepper.constantTimeEquals(old.recoveryPepper))
            #expect(try store.testingCount("SELECT count(*) FROM meta WHERE key = 'key_check/\(new.id.hex)'") == 1)
            #expect(try store.testingCount("SELECT count(*) FROM meta WHERE key = 'key_check/\(old.id.hex)'") == 0, "the old key's format 1 check vouches for it")
            // alice's 3 recovery codes (one used) are still format 1; the v3 migration re-sealed the
            // secrets of alice, bob, carol and the pending ones of carol and dave, and v4 sealed the pepper: the new key.
            let before = try await store.sealedValueCounts()
            #expect(before.contains(SealedValueCount(formatVersion: 1, keyID: nil, count: 3)), "\(before)")
            #expect(before.contains(SealedValueCount(formatVersion: 2, keyID: new.id, count: 6)), "\(before)")

            #expect(try await rekeyAll(store, limit: 2) == ResealBatch(resealed: 3, alreadyCurrent: 6))
            #expect(try await store.sealedValueCounts() == [SealedValueCount(formatVersion: 2, keyID: new.id, count: 9)])
            try await store.close()

            let after = try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: new))
            #expect(after.pepper.constantTimeEquals(old.recoveryPepper))
            #expect(try await after.user("alice")?.secret?.copyBytes() == SchemaV3Tests.rfcSecret)
            #expect(try await after.pendingEnrollment(user: "carol")?.secret.copyBytes() == Array("abcdefghijklmnopqrstuvwxyz012345".utf8))
            let codes = try await after.recoveryCodes(user: "alice")
            #expect(RecoveryCodes.match("gggg-hhhh-jj", against: codes, pepper: SecretBytes(Array("v2-fixture-pepper-0123456789abcdef".utf8))) == 2)
            try await after.close()
            // The old key alone: the database still knows it (its check), but the pepper is under the new key.
            #expect(throws: StoreError.self) { try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: old)) }
        }
    }

    @Test func anUnknownKeyringIsRefusedBeforeAnythingIsWritten() async throws {
        try await withTempDir { dir in
            let known = try makeKeys(in: dir), stranger = try makeKeys(in: dir, name: "stranger"), other = try makeKeys(in: dir, name: "other")
            let store = try openStore(dir, keys: known)
            try await enroll(store, "alice")
            try await store.close()
            let files = databaseFiles(dir)
            #expect(throws: StoreError.wrongKey) { try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: stranger, previous: [other])) }
            #expect(databaseFiles(dir)[""] == files[""] && (databaseFiles(dir)["-wal"]?.count ?? 0) == 0)
            #expect(throws: StoreError.wrongKey) { try SQLiteStore.checkKeys(path: dir + "/twofold.db", keyring: Keyring(sealing: stranger)) }
            let status = try #require(try SQLiteStore.checkKeys(path: dir + "/twofold.db", keyring: Keyring(sealing: stranger, previous: [known])))
            #expect(status.known == [known.id] && status.toRegister == [stranger.id])
            #expect(try SQLiteStore.checkKeys(path: dir + "/absent.db", keyring: Keyring(sealing: stranger)) == nil)
            #expect(databaseFiles(dir)[""] == files[""])
        }
    }

    @Test func aValueChangedBetweenTheReadAndTheWriteIsLeft() async throws {
        try await withTempDir { dir in
            let old = try makeKeys(in: dir), new = try makeKeys(in: dir, name: "new")
            let first = try openStore(dir, keys: old)
            try await enroll(first, "alice")
            try await first.close()
            let store = try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: new, previous: [old]))
            let start = ResealPosition(stage: .factorSecrets)
            let (rows, next) = try await start.walk(limit: 10) { position, limit in
                try await store.pool.read { db in try position.stage.rows(after: position, limit: limit, db) }
            }
            #expect(rows.count == 1 && next == nil)
            let row = try #require(rows.first)
            let resealed = try #require(try row.stage.reseal(row, sealer: store.sealer))
            // Re-enrolled meanwhile: the step's write does not apply, the new secret stays.
            let secret = try await enroll(store, "alice")
            #expect(try await store.pool.write { db in try row.stage.update(row, to: Data(resealed), db) } == false)
            #expect(try await store.user("alice")?.secret?.constantTimeEquals(secret) == true)
            #expect(try await store.pool.write { db in try row.stage.update(row, to: Data(resealed), db) } == false)
            try await store.close()
        }
    }

    @Test func aCursorIsAPlaceInTheWalkAndAForeignOneIsRefused() async throws {
        try await withTempDir { dir in
            let old = try makeKeys(in: dir), new = try makeKeys(in: dir, name: "new")
            let first = try openStore(dir, keys: old)
            let codes = try (0..<4).map { _ in try RecoveryCodes.makeHash(canonical: "0123456789", pepper: first.pepper) }
            for user in ["a", "b", "c"] { try await enroll(first, user, codes: codes) }
            try await first.close()
            let store = try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: new, previous: [old]))
            // 1 pepper + 3 factors + 12 codes, one at a time: 16 steps, each with a cursor, the last without.
            var steps = 0
            var cursor: String?
            repeat {
                let batch = try await store.resealSecrets(after: cursor, limit: 1)
                #expect(batch.resealed + batch.alreadyCurrent == (steps == 16 ? 0 : 1), "step \(steps)")
                cursor = batch.next
                steps += 1
            } while cursor != nil
            // The 17th finds the end.
            #expect(steps == 17)
            #expect(try await store.sealedValueCounts() == [SealedValueCount(formatVersion: 2, keyID: new.id, count: 16)])
            await #expect(throws: StoreError.database("not a rekey cursor of this store")) { try await store.resealSecrets(after: "{", limit: 1) }
            try await store.close()
        }
    }
}
