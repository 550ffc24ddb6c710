import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

extension Backend {
    /// The backends that open a store with a keyring.
    static let rotating = all.filter { $0.makeKeyringStore != nil }
}

/// Key rotation through the store's interface: which keyrings a database accepts, the recovery
/// pepper that outlives the key, and rekey steps that leave every secret under the sealing key, so
/// the old key can go. Runs against every backend that rotates keys; the first test fails for one
/// that does not.
@Suite struct RekeyTests {
    /// Runs rekey steps of `limit` values from the start to the end; their totals.

    /// The counts by key id (nil: format 1), as a dictionary.
    static func counts(_ store: any TwofoldStore) async throws -> [KeyID?: Int] {
        Dictionary(try await store.sealedValueCounts().map { ($0.keyID, $0.count) }, uniquingKeysWith: +)
    }

    @Test(arguments: Backend.all) func everyBackendRotatesKeys(_ backend: Backend) {
        #expect(backend.makeKeyringStore != nil, "backend \(backend.name) cannot open a store with a keyring: key rotation is not implemented for it")
    }

    @Test(arguments: Backend.rotating) func aKeyringWithNoKeyTheDatabaseKnowsIsRefusedAndANewKeyComesInNextToAKnownOne(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let a = try makeKeys(in: dir, name: "a"), b = try makeKeys(in: dir, name: "b")
            let c = try makeKeys(in: dir, name: "c"), d = try makeKeys(in: dir, name: "d")
            let first = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: a))
            try await enroll(first, "alice")
            try await first.close()

            // An unknown key alone: refused, twice (nothing was registered by the first try).
            await #expect(throws: StoreError.wrongKey) { try await backend.makeStore(directory: dir, keyring: Keyring(sealing: b)) }
            await #expect(throws: StoreError.wrongKey) { try await backend.makeStore(directory: dir, keyring: Keyring(sealing: b)) }
            // Next to a known key it is registered; once everything is re-sealed under it, it is enough on its own.
            let rotated = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: b, previous: [a]))
            _ = try await rekeyAll(rotated)
            try await rotated.close()
            try await backend.makeStore(directory: dir, keyring: Keyring(sealing: b)).close()
            // A previous key is brought in too (step 1 of a rotation: the new key as a previous key):
            // after that the database knows c, though c opens nothing yet (not a wrong key, a missing one).
            try await backend.makeStore(directory: dir, keyring: Keyring(sealing: b, previous: [c])).close()
            let error = await #expect(throws: StoreError.self) { try await backend.makeStore(directory: dir, keyring: Keyring(sealing: c, previous: [d])) }
            #expect(error != nil && error != .wrongKey, "\(String(describing: error))")
            try await backend.makeStore(directory: dir, keyring: Keyring(sealing: c, previous: [b])).close()
            await #expect(throws: StoreError.wrongKey) { try await backend.makeStore(directory: dir, keyring: Keyring(sealing: d)) }
        }
    }

    @Test(arguments: Backend.rotating) func rekeyMovesEverySecretUnderTheSealingKeyAndTheOldKeyCanGo(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new")
            let store = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: old))
            let pepper = try #require(try await store.recoveryPepper())
            let codes = try RecoveryCodes.generate(count: 3)
            let hashes = try codes.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: pepper) }
            let alice = try await enroll(store, "alice", codes: hashes)
            let bob = try await enroll(store, "bob", factor: "tablet")
            let pending = try SecretBytes(randomCount: 20)
            try await store.beginEnrollment(user: "carol", factor: "phone", secret: pending, parameters: OTPParameters(), atMillis: 5)
            // alice, bob, carol's pending secret, alice's 3 codes, the pepper.
            #expect(try await Self.counts(store) == [old.id: 7])
            try await store.close()

            // Sealing with the new key, the old one kept to open: everything still opens, new secrets go under the new key.
            let rotated = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new, previous: [old]))
            #expect(try await rotated.recoveryPepper()?.constantTimeEquals(pepper) == true)
            #expect(try await rotated.user("alice")?.secret?.constantTimeEquals(alice) == true)
            let dave = try await enroll(rotated, "dave")
            #expect(try await Self.counts(rotated) == [old.id: 7, new.id: 1])

            let pass = try await rekeyAll(rotated)
            #expect(pass == ResealBatch(resealed: 7, alreadyCurrent: 1))
            #expect(try await Self.counts(rotated) == [new.id: 8])
            // Again: nothing to do, everything counted as already under the key.
            #expect(try await rekeyAll(rotated, limit: 100) == ResealBatch(alreadyCurrent: 8))
            try await rotated.close()

            // The old key gone: every secret, the pending one, the codes and the pepper still open.
            let after = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new))
            let samePepper = try #require(try await after.recoveryPepper())
            #expect(samePepper.constantTimeEquals(pepper))
            #expect(try await after.user("alice")?.secret?.constantTimeEquals(alice) == true)
            #expect(try await after.user("bob")?.factor("tablet")?.secret?.constantTimeEquals(bob) == true)
            #expect(try await after.user("dave")?.secret?.constantTimeEquals(dave) == true)
            #expect(try await after.pendingEnrollment(user: "carol")?.secret.constantTimeEquals(pending) == true)
            let stored = try await after.recoveryCodes(user: "alice")
            #expect(RecoveryCodes.match(codes[1], against: stored, pepper: samePepper) == 1)
            try await after.close()
        }
    }

    @Test(arguments: Backend.rotating) func aNewStoreHasARandomPepperOfItsOwn(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            for sub in ["one", "two"] { try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: false) }
            let one = try await backend.makeStore(directory: dir + "/one", keyring: Keyring(sealing: keys))
            let two = try await backend.makeStore(directory: dir + "/two", keyring: Keyring(sealing: keys))
            let pepper = try #require(try await one.recoveryPepper())
            #expect(pepper.count == 32)
            #expect(!pepper.constantTimeEquals(keys.recoveryPepper), "not derived from the key")
            #expect(try await two.recoveryPepper()?.constantTimeEquals(pepper) == false)
            try await one.close()
            try await two.close()
        }
    }

    @Test(arguments: Backend.rotating) func aSecretUnderAKeyTheDaemonDoesNotHoldIsLeftAndCounted(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new"), other = try makeKeys(in: dir, name: "other")
            let first = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: old))
            try await enroll(first, "alice")
            try await first.close()
            // The old key removed before any rekey: the pepper is under it, so the store does not open.
            try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new, previous: [old])).close()
            await #expect(throws: StoreError.self) { try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new)) }

            // A daemon that seals with a key this one does not hold (another daemon's configuration gone wrong).
            let store = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new, previous: [old]))
            #expect(try await rekeyAll(store) == ResealBatch(resealed: 2))
            let stray = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: other, previous: [new]))
            try await enroll(stray, "zed")
            try await stray.close()
            #expect(try await rekeyAll(store) == ResealBatch(alreadyCurrent: 2, unreadable: 1))
            #expect(try await Self.counts(store) == [new.id: 2, other.id: 1])
            await #expect(throws: StoreError.self) { try await store.user("zed") }
            try await store.close()
        }
    }
}
