import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// FIDO2 keys (schema v8) through the store calls and the verify path: adding, listing, removing,
/// the conflicts, the login read, the counter rule (a cloned key refused), and keys counted as
/// factors wherever factors are counted. Runs against every backend.
@Suite struct KeyStoreTests {
    static let policy = ThrottlePolicy(maxFailures: 3, baseDelayMillis: 1_000, maxDelayMillis: 30_000, lockDurationMillis: 60_000)

    static func withStore(_ backend: Backend, _ body: (any TwofoldStore, String) async throws -> Void) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await body(store, dir)
            try await store.close()
        }
    }

    /// A well-formed key: ES256 (the default) or EdDSA, its bytes derived from `seed`.
    static func key(_ name: String, seed: UInt8, count: UInt32 = 0, algorithm: COSEAlgorithm = .es256, at millis: Int64 = 1_000) -> Fido2Credential {
        let publicKey: [UInt8] = algorithm == .es256 ? [0x04] + Array(repeating: seed, count: 64) : Array(repeating: seed, count: 32)
        return Fido2Credential(name: name, id: (0..<(16 + Int(seed))).map { UInt8(truncatingIfNeeded: $0 &+ Int(seed)) }, algorithm: algorithm,
                               publicKey: publicKey, signCount: count, aaguid: Array(repeating: seed &+ 1, count: 16), addedAtMillis: millis)
    }

    static func assertion(_ user: String, _ key: Fido2Credential, count: UInt32, at millis: Int64 = 5_000,
                          policy: ThrottlePolicy = policy) -> StoreMutation {
        .accept(user: user, use: .keyAssertion(name: key.name, credential: key.id, signCount: count), atMillis: millis, policy: policy)
    }

    /// The user as `user(_:)`, `loginRecord(_:setting:)` and a login reader (if the store has one)
    /// read it: the keys the same each way.
    static func read(_ store: any TwofoldStore, _ user: String) async throws -> UserRecord? {
        let record = try await store.user(user)
        let login = try await store.loginRecord(user, setting: "policy").record
        #expect(login?.keys == record?.keys && login?.lastSuccessMillis == record?.lastSuccessMillis)
        if let reader = try store.makeLoginReader() {
            let read = try reader.loginRecord(user)
            #expect(read?.keys == record?.keys && read?.lastSuccessMillis == record?.lastSuccessMillis)
        }
        return record
    }

    @Test(arguments: Backend.all) func keysAreAddedListedReadWithTheUserAndRemoved(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            let blue = Self.key("blue", seed: 1, count: 7), green = Self.key("green", seed: 2, algorithm: .edDSA)
            // Added out of order: read in name order. A key makes the user known and enrolled.
            try await store.addKey(user: "alice", green)
            try await store.addKey(user: "alice", blue)
            try await store.addKey(user: "bob", Self.key("key", seed: 3))
            let alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.keys == [blue, green] && alice.factors.isEmpty && alice.hasFactor && alice.status == .active)
            #expect(alice.kinds == [.fido2] && alice.hasFactor(ofKindIn: [.fido2]) && !alice.hasFactor(ofKindIn: [.totp]))
            #expect(try await Self.read(store, "carol") == nil)
            // Listings: every user's keys, and the users' kinds.
            #expect(try await store.listKeys(after: nil, limit: 100)
                    == [UserKey(user: "alice", key: blue), UserKey(user: "alice", key: green), UserKey(user: "bob", key: Self.key("key", seed: 3))])
            #expect(try await store.listKeys(after: "alice", limit: 100).map(\.user) == ["bob"])
            let listed = try await store.listUsers(after: nil, limit: 10)
            #expect(listed.map(\.name) == ["alice", "bob"] && listed.map(\.keys.count) == [2, 1] && listed.allSatisfy { $0.kinds == [.fido2] })
            // Durable.
            let reopened = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            #expect(try await reopened.user("alice")?.keys == [blue, green])
            try await reopened.close()
            // Removed by name, then all of a user's.
            #expect(try await store.removeKey(user: "alice", name: "red") == 0)
            #expect(try await store.removeKey(user: "alice", name: "blue") == 1)
            #expect(try await Self.read(store, "alice")?.keys == [green])
            #expect(try await store.removeKey(user: "bob", name: nil) == 1)
            #expect(try await store.removeKey(user: "bob", name: nil) == 0)
            let bob = try #require(try await Self.read(store, "bob"))
            #expect(bob.keys.isEmpty && !bob.hasFactor && bob.status == nil)
            #expect(try await store.listKeys(after: nil, limit: 100).map(\.key.name) == ["green"])
        }
    }

    @Test(arguments: Backend.all) func aNameOrCredentialTakenIsAConflictAndWritesNothing(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let blue = Self.key("blue", seed: 1)
            try await store.addKey(user: "alice", blue)
            // The same name for the user, another key: refused.
            await #expect(throws: Fido2Credential.nameTaken(user: "alice", name: "blue")) {
                try await store.addKey(user: "alice", Self.key("blue", seed: 2))
            }
            // The same key again under another name, for the user or for anyone else: refused,
            // and the other user is not even created.
            var again = blue
            again.name = "spare"
            await #expect(throws: Fido2Credential.credentialTaken) { try await store.addKey(user: "alice", again) }
            await #expect(throws: Fido2Credential.credentialTaken) { try await store.addKey(user: "mallory", again) }
            #expect(try await store.user("mallory") == nil)
            #expect(try await store.user("alice")?.keys == [blue])
            // Another user may use the name.
            try await store.addKey(user: "bob", Self.key("blue", seed: 2))
            // Malformed keys are refused before anything is written.
            var bad = Self.key("odd", seed: 5)
            bad.publicKey = Array(bad.publicKey.dropLast())
            await #expect(throws: StoreError.self) { try await store.addKey(user: "carol", bad) }
            bad = Self.key("odd", seed: 5)
            bad.id = []
            await #expect(throws: StoreError.self) { try await store.addKey(user: "carol", bad) }
            bad = Self.key("Not A Name", seed: 5)
            await #expect(throws: StoreError.self) { try await store.addKey(user: "carol", bad) }
            #expect(try await store.user("carol") == nil)
            // Once removed, the key may be registered again (to anyone).
            #expect(try await store.removeKey(user: "alice", name: "blue") == 1)
            try await store.addKey(user: "mallory", again)
            #expect(try await store.user("mallory")?.keys == [again])
        }
    }

    @Test(arguments: Backend.all) func listingKeysPagesWholeUsers(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let counts = [3, 1, 2, 0, 4, 1, 2]
            var all: [UserKey] = []
            var seed: UInt8 = 0
            for (i, count) in counts.enumerated() {
                let user = "u\(i)"
                try await store.setRequirement(user: user, .policy)
                for n in 0..<count {
                    seed += 1
                    let key = Self.key("key-\(n)", seed: seed)
                    try await store.addKey(user: user, key)
                    all.append(UserKey(user: user, key: key))
                }
            }
            #expect(try await store.listKeys(after: nil, limit: 1_000) == all)
            #expect(try await store.listKeys(after: nil, limit: 0).isEmpty)
            for limit in [1, 2, 3, 4, 5, 7] {
                var pages: [[UserKey]] = []
                var after: String?
                while pages.count <= all.count {
                    let page = try await store.listKeys(after: after, limit: limit)
                    if page.isEmpty { break }
                    pages.append(page)
                    after = page.last?.user
                }
                #expect(pages.flatMap { $0 } == all, "limit \(limit)")
                for page in pages {
                    let users = Set(page.map(\.user))
                    // Within the limit, unless it is one user whose keys are more; users come whole.
                    #expect(page.count <= limit || users.count == 1, "limit \(limit): \(page.map(\.user))")
                    for user in users { #expect(page.filter { $0.user == user }.count == all.filter { $0.user == user }.count) }
                }
            }
        }
    }

    @Test(arguments: Backend.all) func anAssertionIsAcceptedOnlyWhenItsCounterAdvances(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let blue = Self.key("blue", seed: 1, count: 5)
            try await store.addKey(user: "alice", blue)
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 100, policy: Self.policy)])
            // Advances: applied, the counter and the use recorded, the throttle cleared.
            #expect(try await store.commit([Self.assertion("alice", blue, count: 6, at: 5_000)]) == [.applied])
            var alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.keys.first?.signCount == 6 && alice.keys.first?.lastUsedMillis == 5_000)
            #expect(alice.lastSuccessMillis == 5_000 && alice.throttle == ThrottleState())
            // The same count again (a replay, or a clone), and one going backwards: refused, nothing changed.
            #expect(try await store.commit([Self.assertion("alice", blue, count: 6, at: 6_000)]) == [.conflict])
            #expect(try await store.commit([Self.assertion("alice", blue, count: 2, at: 6_000)]) == [.conflict])
            #expect(try await store.commit([Self.assertion("alice", blue, count: 0, at: 6_000)]) == [.conflict])
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.keys.first?.signCount == 6 && alice.keys.first?.lastUsedMillis == 5_000)
            // Another user's key, another credential under the key's name, an unknown user: no match.
            try await store.addKey(user: "bob", Self.key("blue", seed: 2))
            #expect(try await store.commit([Self.assertion("bob", blue, count: 9)]) == [.conflict])
            #expect(try await store.commit([Self.assertion("alice", Self.key("blue", seed: 2), count: 9)]) == [.conflict])
            #expect(try await store.commit([Self.assertion("nobody", blue, count: 9)]) == [.conflict])
            // The largest counter a key can give.
            #expect(try await store.commit([Self.assertion("alice", blue, count: .max)]) == [.applied])
            #expect(try await store.user("alice")?.keys.first?.signCount == .max)
        }
    }

    @Test(arguments: Backend.all) func aKeyWithoutACounterIsAcceptedAtZeroUntilItCounts(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let plain = Self.key("plain", seed: 1)
            try await store.addKey(user: "alice", plain)
            // 0 → 0: a key without a counter, every time.
            #expect(try await store.commit([Self.assertion("alice", plain, count: 0, at: 5_000)]) == [.applied])
            #expect(try await store.commit([Self.assertion("alice", plain, count: 0, at: 6_000)]) == [.applied])
            #expect(try await store.user("alice")?.keys.first?.lastUsedMillis == 6_000)
            // Once it counted, zero is a clone.
            #expect(try await store.commit([Self.assertion("alice", plain, count: 1, at: 7_000)]) == [.applied])
            #expect(try await store.commit([Self.assertion("alice", plain, count: 0, at: 8_000)]) == [.conflict])
            #expect(try await store.user("alice")?.keys.first?.signCount == 1)
        }
    }

    @Test(arguments: Backend.all) func consumingAnAssertionMovesTheCounterWithoutALogin(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let blue = Self.key("blue", seed: 1, count: 5)
            try await store.addKey(user: "alice", blue)
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 100, policy: Self.policy)])
            let use = FactorUse.keyAssertion(name: "blue", credential: blue.id, signCount: 8)
            #expect(try await store.commit([.consume(user: "alice", use: use)]) == [.applied])
            #expect(try await store.commit([.consume(user: "alice", use: use)]) == [.conflict])
            let alice = try #require(try await store.user("alice"))
            #expect(alice.keys.first?.signCount == 8 && alice.keys.first?.lastUsedMillis == nil && alice.throttle.failures == 1)
            #expect(try await store.commit([Self.assertion("alice", blue, count: 8)]) == [.conflict])
        }
    }

    @Test(arguments: Backend.all) func aThrottledAssertionIsRefusedCountedAndUsedUp(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let blue = Self.key("blue", seed: 1, count: 5)
            try await store.addKey(user: "alice", blue)
            // A failure at 1,000 sets a delay of 1 s: an assertion at 1,500 is refused.
            let failed = try await store.commit([.recordFailure(user: "alice", atMillis: 1_000, policy: Self.policy)])
            guard case .appliedFailure(let state)? = failed.first, let notBefore = state.notBeforeMillis, notBefore > 1_500 else {
                Issue.record("no delay after a failure: \(failed)")
                return
            }
            let refused = try await store.commit([Self.assertion("alice", blue, count: 6, at: 1_500), .auditAttempt(AuditRecord(
                timeMillis: 1_500, action: "verify", user: "alice", outcome: "success"))])
            guard case .throttled(let next)? = refused.first else {
                Issue.record("not throttled: \(refused)")
                return
            }
            #expect(next.failures == 2)
            #expect(try await store.audit(AuditQuery(user: "alice")).last?.outcome == "failure")
            // The refused assertion's count is used up; the key has no new last use.
            let alice = try #require(try await store.user("alice"))
            #expect(alice.keys.first?.signCount == 6 && alice.keys.first?.lastUsedMillis == nil)
            #expect(try await store.commit([Self.assertion("alice", blue, count: 6, at: notBefore + 60_000)]) == [.conflict])
            #expect(try await store.commit([Self.assertion("alice", blue, count: 7, at: notBefore + 60_000)]) == [.applied])
        }
    }

    @Test(arguments: Backend.all) func twoAssertionsOfOneCountAtOnceAreAcceptedOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let one = try await backend.makeStore(directory: dir, keys: keys)
            let two = try await backend.makeStore(directory: dir, keys: keys)
            let blue = Self.key("blue", seed: 1)
            try await one.addKey(user: "alice", blue)
            for count in UInt32(1)...100 {
                let mutation = Self.assertion("alice", blue, count: count, at: 5_000 + Int64(count))
                async let first = one.commit([mutation])
                async let second = two.commit([mutation])
                let results = try await first + second
                #expect(results.filter { $0 == .applied }.count == 1, "count \(count): \(results)")
                #expect(results.filter { $0 == .conflict }.count == 1, "count \(count): \(results)")
            }
            // In one batch too.
            let mutation = Self.assertion("alice", blue, count: 200)
            #expect(try await one.commit([mutation, mutation]) == [.applied, .conflict])
            #expect(try await two.user("alice")?.keys.first?.signCount == 200)
            try await one.close()
            try await two.close()
        }
    }

    @Test(arguments: Backend.all) func keysCountAsFactorsAndRevokeRemovesThem(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let pepper = SecretBytes(Array(repeating: 3, count: 32))
            let codes = try (0..<3).map { _ in try RecoveryCodes.makeHash(canonical: "abcd-efgh-ijkl", pepper: pepper) }
            // A key alone is a factor for recovery codes.
            try await store.addKey(user: "alice", Self.key("blue", seed: 1))
            try await store.replaceRecoveryCodes(user: "alice", codes: codes)
            #expect(try await store.recoveryCodes(user: "alice").count == 3)
            // Removing the last OTP factor keeps the codes while a key is left…
            try await enroll(store, "alice")
            #expect(try await store.removeFactor(user: "alice", name: FactorName.first))
            #expect(try await store.user("alice")?.recoveryCodesLeft == 3)
            // …and removing the last key, the last factor, removes them.
            #expect(try await store.removeKey(user: "alice", name: "blue") == 1)
            #expect(try await store.user("alice")?.recoveryCodesLeft == 0)
            await #expect(throws: StoreError.notEnrolled("alice")) { try await store.replaceRecoveryCodes(user: "alice", codes: codes) }
            // A key left when another goes: the codes stay.
            try await store.addKey(user: "bob", Self.key("one", seed: 2))
            try await store.addKey(user: "bob", Self.key("two", seed: 3))
            try await store.replaceRecoveryCodes(user: "bob", codes: codes)
            #expect(try await store.removeKey(user: "bob", name: "one") == 1)
            #expect(try await store.user("bob")?.recoveryCodesLeft == 3)
            // Revoking (and turning 2FA off, which revokes) removes the keys.
            #expect(try await store.revoke(user: "bob"))
            let bob = try #require(try await Self.read(store, "bob"))
            #expect(bob.keys.isEmpty && bob.recoveryCodesLeft == 0 && !bob.hasFactor)
            #expect(try await store.listKeys(after: nil, limit: 10).isEmpty)
            // A revoked key may be registered again.
            try await store.addKey(user: "carol", Self.key("two", seed: 3))
            try await store.addKey(user: "dave", Self.key("only", seed: 4))
            #expect(try await store.revoke(user: "dave"), "a user with only a key has something to revoke")
            #expect(try await store.revoke(user: "dave") == false)
        }
    }
}
