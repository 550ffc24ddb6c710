import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// Sealing as the SQLite file holds it: the file unchanged after a wrong key, tampered or moved
/// blobs, no plaintext in the file. The round trip runs against every backend in TwofoldStoreConformanceTests.
@Suite struct EncryptionTests {
    @Test func wrongKeyIsRefusedAndChangesNothing() async throws {
        try await withTempDir { dir in
            let right = try makeKeys(in: dir)
            let store = try openStore(dir, keys: right)
            let secret = try await enroll(store, "alice")
            try await store.close()
            let before = databaseFiles(dir)
            #expect((before[""]?.count ?? 0) > 0)
            // Closing folds the WAL into the main file.
            #expect((before["-wal"]?.count ?? 0) == 0)

            let wrong = try makeKeys(in: dir, name: "other-key")
            #expect(throws: StoreError.wrongKey) { try openStore(dir, keys: wrong) }
            #expect(throws: StoreError.wrongKey) { try openStore(dir, keys: wrong) }
            let after = databaseFiles(dir)
            #expect(after[""] == before[""])
            #expect((after["-wal"]?.count ?? 0) == 0)

            // The right key still opens everything.
            let reopened = try openStore(dir, keys: right)
            let alice = try #require(try await reopened.user("alice"))
            #expect(alice.secret?.constantTimeEquals(secret) == true)
            try await reopened.close()
        }
    }

    @Test func secretCopiedToAnotherUserOrFactorDoesNotOpen() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await enroll(store, "alice", factor: "tablet")
            try await enroll(store, "bob")
            try store.testingExecute("UPDATE factors SET secret = (SELECT secret FROM factors WHERE user = 'alice' AND name = 'app') WHERE user = 'bob'")
            let error = await #expect(throws: StoreError.self) { try await store.user("bob") }
            #expect(corruptUser(error) == "bob")
            #expect(try await store.user("alice")?.factors.compactMap(\.secret).count == 2)
            // The AAD names the factor too: a secret copied to another factor of the same user does not open.
            try store.testingExecute("UPDATE factors SET secret = (SELECT secret FROM factors WHERE user = 'alice' AND name = 'app') WHERE user = 'alice' AND name = 'tablet'")
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("alice") }) == "alice")
            // Nor a row moved to another factor name.
            try await enroll(store, "dora")
            try store.testingExecute("UPDATE factors SET name = 'phone' WHERE user = 'dora'")
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("dora") }) == "dora")

            // A pending secret moved into the active slot does not open either (purpose is bound).
            try await store.beginEnrollment(user: "carol", factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)
            try store.testingExecute("""
                INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, added_at)
                    SELECT name, pending_name, pending_method, pending_algorithm, pending_digits, pending_period, pending_secret, 5
                    FROM users WHERE name = 'carol'
                """)
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("carol") }) == "carol")
            try await store.close()
        }
    }

    @Test func tamperedOrTruncatedSecretIsCorrupt() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            for user in ["flip", "short", "tagless", "version"] { try await enroll(store, user) }
            let sealed = try #require(try store.testingFetchBlob("SELECT secret FROM factors WHERE user = 'flip'"))
            let expectedCount = Sealer.overhead + 20
            #expect(sealed.count == expectedCount)
            // Format 2: the version, then the sealing key's id.
            #expect(sealed[0] == 2)
            #expect(Array(sealed[1...8]) == store.sealer.keyID.bytes)

            // One byte of the ciphertext changed.
            try store.testingExecute("""
                UPDATE factors SET secret = substr(secret, 1, 29) || CASE WHEN substr(secret, 30, 1) = x'00' THEN x'01' ELSE x'00' END
                    || substr(secret, 31) WHERE user = 'flip'
                """)
            try store.testingExecute("UPDATE factors SET secret = substr(secret, 1, 20) WHERE user = 'short'")
            try store.testingExecute("UPDATE factors SET secret = substr(secret, 1, length(secret) - 1) WHERE user = 'tagless'")
            try store.testingExecute("UPDATE factors SET secret = x'03' || substr(secret, 2) WHERE user = 'version'")
            for user in ["flip", "short", "tagless", "version"] {
                let error = await #expect(throws: StoreError.self) { try await store.user(user) }
                #expect(corruptUser(error) == user, "\(user): \(String(describing: error))")
            }
            // Listing does not open secrets, so it still works.
            #expect(try await store.listUsers(after: nil, limit: 10).count == 4)
            try await store.close()
        }
    }

    @Test func recoveryCodeMovedToAnotherIndexOrUserDoesNotOpen() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try openStore(dir, keys: keys)
            let codes = try (0..<3).map { _ in try RecoveryCodes.makeHash(canonical: "0123456789", pepper: keys.recoveryPepper) }
            try await enroll(store, "alice", codes: codes)
            try await enroll(store, "bob", codes: codes)
            try store.testingExecute("""
                UPDATE recovery_codes SET sealed = (SELECT sealed FROM recovery_codes WHERE user = 'alice' AND idx = 0)
                WHERE user = 'alice' AND idx = 1
                """)
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.recoveryCodes(user: "alice") }) == "alice")
            try store.testingExecute("""
                UPDATE recovery_codes SET sealed = (SELECT sealed FROM recovery_codes WHERE user = 'alice' AND idx = 2)
                WHERE user = 'bob' AND idx = 2
                """)
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.recoveryCodes(user: "bob") }) == "bob")
            try await store.close()
        }
    }

    @Test func plaintextNeverReachesTheFile() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try openStore(dir, keys: keys)
            let secret = try SecretBytes(randomCount: 20)
            let pending = try SecretBytes(randomCount: 20)
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: keys.recoveryPepper)
            try await store.importEnrollment(EnrollmentImportRecord(user: "alice", factor: FactorName.first, secret: secret, parameters: OTPParameters(),
                                                                    verify: VerifyState(), recoveryCodes: [code], atMillis: 1))
            try await store.beginEnrollment(user: "alice", factor: FactorName.first, secret: pending, parameters: OTPParameters(), atMillis: 2)
            try await store.beginEnrollment(user: "bob", factor: FactorName.first, secret: pending, parameters: OTPParameters(), atMillis: 3)
            try await store.activateEnrollment(user: "bob", recoveryCodes: [code], verify: VerifyState(), atMillis: 4)

            let needles = [secret.copyBytes(), pending.copyBytes(), code.hash, code.salt]
            // While open (WAL) and after close (checkpointed into the main file).
            for files in [databaseFiles(dir)] {
                for (_, bytes) in files { for needle in needles { #expect(!contains(bytes, needle)) } }
            }
            try await store.close()
            let closed = databaseFiles(dir)
            #expect((closed[""]?.count ?? 0) > 0)
            for (_, bytes) in closed { for needle in needles { #expect(!contains(bytes, needle)) } }
            // The search itself works: the user name is there in the clear.
            #expect(contains(closed[""] ?? [], Array("alice".utf8)))
        }
    }
}
