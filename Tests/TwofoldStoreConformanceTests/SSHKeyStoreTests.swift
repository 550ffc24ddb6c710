import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// SSH public keys (schema v9) through the store calls: adding, reading, listing, removing, the
/// conflicts (a name per user, a key in the whole store), imports all or none, paging, revoke;
/// and that they are no second factor. Runs against every backend.
@Suite struct SSHKeyStoreTests {
    static func withStore(_ backend: Backend, _ body: (any TwofoldStore, String) async throws -> Void) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await body(store, dir)
            try await store.close()
        }
    }

    /// SSH wire strings (u32 length, bytes).
    static func wire(_ fields: [[UInt8]]) -> [UInt8] {
        fields.flatMap { [UInt8(truncatingIfNeeded: $0.count >> 24), UInt8(truncatingIfNeeded: $0.count >> 16),
                          UInt8(truncatingIfNeeded: $0.count >> 8), UInt8(truncatingIfNeeded: $0.count)] + $0 }
    }

    /// A well-formed key, its bytes derived from `seed`: an sk- Ed25519 key (the default), an sk-
    /// ECDSA one, or a plain Ed25519 one.
    static func key(_ name: String, seed: UInt8, type: String = "sk-ssh-ed25519@openssh.com", comment: String = "",
                    at millis: Int64 = 1_000) -> SSHKeyRecord {
        let fields: [[UInt8]] = switch type {
        case "sk-ecdsa-sha2-nistp256@openssh.com": [Array("nistp256".utf8), [0x04] + Array(repeating: seed, count: 64), Array("ssh:".utf8)]
        case "ssh-ed25519": [Array(repeating: seed, count: 32)]
        default: [Array(repeating: seed, count: 32), Array("ssh:".utf8)]
        }
        let key = SSHPublicKey(type: type, blob: wire([Array(type.utf8)] + fields), comment: comment)
        return SSHKeyRecord(name: name, key: key, addedAtMillis: millis)
    }

    @Test(arguments: Backend.all) func keysAreAddedReadListedAndRemoved(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            let blue = Self.key("blue", seed: 1, comment: "alice@laptop (yubikey)")
            let green = Self.key("green", seed: 2, type: "sk-ecdsa-sha2-nistp256@openssh.com", at: 2_000)
            let plain = Self.key("plain", seed: 3, type: "ssh-ed25519")
            // Added out of order: read in name order.
            try await store.addSSHKey(user: "alice", green)
            try await store.addSSHKey(user: "alice", blue)
            try await store.addSSHKey(user: "bob", plain)
            #expect(try await store.sshKeys(user: "alice") == [blue, green])
            #expect(try await store.sshKeys(user: "carol").isEmpty)
            // What is served is the line that was read.
            let line = try #require(try await store.sshKeys(user: "alice").first).key.authorizedKeysLine(options: [])
            #expect(try SSHPublicKey(line: line) == blue.key)
            #expect(try await store.listSSHKeys(after: nil, limit: 100)
                    == [UserSSHKey(user: "alice", key: blue), UserSSHKey(user: "alice", key: green), UserSSHKey(user: "bob", key: plain)])
            #expect(try await store.listSSHKeys(after: "alice", limit: 100).map(\.user) == ["bob"])
            // Durable.
            let reopened = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            #expect(try await reopened.sshKeys(user: "alice") == [blue, green])
            try await reopened.close()
            // Removed by name, then all of a user's.
            #expect(try await store.removeSSHKey(user: "alice", name: "red") == 0)
            #expect(try await store.removeSSHKey(user: "alice", name: "blue") == 1)
            #expect(try await store.sshKeys(user: "alice") == [green])
            #expect(try await store.removeSSHKey(user: "bob", name: nil) == 1)
            #expect(try await store.removeSSHKey(user: "bob", name: nil) == 0)
            #expect(try await store.listSSHKeys(after: nil, limit: 100).map(\.key.name) == ["green"])
        }
    }

    @Test(arguments: Backend.all) func sshKeysAreNoSecondFactor(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            // A user with only SSH keys is known, but not enrolled: sshd checks the keys, PAM does not.
            try await store.addSSHKey(user: "alice", Self.key("blue", seed: 1))
            let alice = try #require(try await store.user("alice"))
            #expect(!alice.hasFactor && alice.kinds.isEmpty && alice.status == nil && alice.keys.isEmpty)
            #expect(try await store.loginRecord("alice", setting: "policy").record?.hasFactor == false)
            // With an OTP factor: its kind only; removing it, the last factor, removes the recovery
            // codes (an SSH key does not keep them), not the SSH key.
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: try SecretBytes(randomCount: 32))
            try await enroll(store, "bob", codes: [code])
            #expect(try await store.user("bob")?.recoveryCodesLeft == 1)
            try await store.addSSHKey(user: "bob", Self.key("blue", seed: 2))
            #expect(try await store.user("bob")?.kinds == [.totp])
            #expect(try await store.removeFactor(user: "bob", name: FactorName.first))
            let bob = try #require(try await store.user("bob"))
            #expect(!bob.hasFactor && bob.recoveryCodesLeft == 0)
            #expect(try await store.sshKeys(user: "bob").map(\.name) == ["blue"])
        }
    }

    @Test(arguments: Backend.all) func aNameOrKeyTakenIsAConflictAndWritesNothing(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let blue = Self.key("blue", seed: 1)
            try await store.addSSHKey(user: "alice", blue)
            // The same name for the user, another key: refused.
            await #expect(throws: SSHKeyRecord.nameTaken(user: "alice", name: "blue")) {
                try await store.addSSHKey(user: "alice", Self.key("blue", seed: 2))
            }
            // The same key under another name, for the user or for anyone else (another comment
            // too): refused, and the other user is not even created.
            var again = blue
            again.name = "spare"
            again.key.comment = "another comment"
            await #expect(throws: SSHKeyRecord.keyTaken) { try await store.addSSHKey(user: "alice", again) }
            await #expect(throws: SSHKeyRecord.keyTaken) { try await store.addSSHKey(user: "mallory", again) }
            #expect(try await store.user("mallory") == nil)
            #expect(try await store.sshKeys(user: "alice") == [blue])
            // Another user may use the name.
            try await store.addSSHKey(user: "bob", Self.key("blue", seed: 2))
            // Malformed ones are refused before anything is written.
            var bad = Self.key("odd", seed: 5)
            bad.key.blob.removeLast()
            await #expect(throws: StoreError.self) { try await store.addSSHKey(user: "carol", bad) }
            bad = Self.key("odd", seed: 5)
            bad.key.type = "ssh-ed25519"
            await #expect(throws: StoreError.self) { try await store.addSSHKey(user: "carol", bad) }
            bad = Self.key("odd", seed: 5, comment: String(repeating: "c", count: 257))
            await #expect(throws: StoreError.self) { try await store.addSSHKey(user: "carol", bad) }
            await #expect(throws: StoreError.self) { try await store.addSSHKey(user: "carol", Self.key("Not A Name", seed: 5)) }
            #expect(try await store.user("carol") == nil)
            // Once removed, the key may be registered again (to anyone).
            #expect(try await store.removeSSHKey(user: "alice", name: "blue") == 1)
            try await store.addSSHKey(user: "mallory", again)
            #expect(try await store.sshKeys(user: "mallory") == [again])
        }
    }

    @Test(arguments: Backend.all) func anImportIsAllOrNone(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            try await store.importSSHKeys([])
            let stored = Self.key("blue", seed: 1)
            try await store.addSSHKey(user: "alice", stored)
            let fresh = [UserSSHKey(user: "bob", key: Self.key("one", seed: 2)), UserSSHKey(user: "carol", key: Self.key("one", seed: 3))]
            // A stored key again (for another user), a stored name again, a name twice, a key twice,
            // a malformed key: nothing of the import written, whatever its place.
            var renamed = stored
            renamed.name = "mine"
            let refusals: [([UserSSHKey], StoreError?)] = [
                (fresh + [UserSSHKey(user: "dave", key: renamed)], SSHKeyRecord.keyTaken),
                ([UserSSHKey(user: "alice", key: Self.key("blue", seed: 4))] + fresh, SSHKeyRecord.nameTaken(user: "alice", name: "blue")),
                (fresh + [UserSSHKey(user: "bob", key: Self.key("one", seed: 5))], SSHKeyRecord.nameTaken(user: "bob", name: "one")),
                (fresh + [UserSSHKey(user: "dave", key: Self.key("two", seed: 3))], SSHKeyRecord.keyTaken),
                (fresh + [UserSSHKey(user: "dave", key: Self.key("Bad", seed: 6))], nil),
            ]
            for (batch, error) in refusals {
                if let error {
                    await #expect(throws: error) { try await store.importSSHKeys(batch) }
                } else {
                    await #expect(throws: StoreError.self) { try await store.importSSHKeys(batch) }
                }
                #expect(try await store.listSSHKeys(after: nil, limit: 100) == [UserSSHKey(user: "alice", key: stored)])
                for user in ["bob", "carol", "dave"] { #expect(try await store.user(user) == nil) }
            }
            // A good one: every key, users created.
            try await store.importSSHKeys(fresh + [UserSSHKey(user: "alice", key: Self.key("green", seed: 7))])
            #expect(try await store.listSSHKeys(after: nil, limit: 100).map { "\($0.user)/\($0.key.name)" }
                    == ["alice/blue", "alice/green", "bob/one", "carol/one"])
            #expect(try await store.sshKeys(user: "carol") == [fresh[1].key])
        }
    }

    @Test(arguments: Backend.all) func listingSSHKeysPagesWholeUsers(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let counts = [3, 1, 2, 0, 4, 1, 2]
            var all: [UserSSHKey] = []
            var seed: UInt8 = 0
            for (i, count) in counts.enumerated() {
                let user = "u\(i)"
                try await store.setRequirement(user: user, .policy)
                for n in 0..<count {
                    seed += 1
                    all.append(UserSSHKey(user: user, key: Self.key("key-\(n)", seed: seed)))
                }
            }
            try await store.importSSHKeys(all)
            #expect(try await store.listSSHKeys(after: nil, limit: 1_000) == all)
            #expect(try await store.listSSHKeys(after: nil, limit: 0).isEmpty)
            for limit in [1, 2, 3, 4, 5, 7] {
                var pages: [[UserSSHKey]] = []
                var after: String?
                while pages.count <= all.count {
                    let page = try await store.listSSHKeys(after: after, limit: limit)
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

    @Test(arguments: Backend.all) func revokeRemovesTheUsersSSHKeys(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            try await store.addSSHKey(user: "alice", Self.key("blue", seed: 1))
            try await store.addSSHKey(user: "alice", Self.key("green", seed: 2))
            try await store.addSSHKey(user: "bob", Self.key("blue", seed: 3))
            try await enroll(store, "carol")
            try await store.addSSHKey(user: "carol", Self.key("blue", seed: 4))
            // SSH keys alone are something to revoke.
            #expect(try await store.revoke(user: "alice"))
            #expect(try await store.sshKeys(user: "alice").isEmpty)
            #expect(try await !store.revoke(user: "alice"))
            #expect(try await store.revoke(user: "carol"))
            #expect(try await store.sshKeys(user: "carol").isEmpty)
            #expect(try await store.user("carol")?.hasFactor == false)
            #expect(try await store.listSSHKeys(after: nil, limit: 100).map(\.user) == ["bob"])
            // A revoked key may be registered again.
            try await store.addSSHKey(user: "dave", Self.key("blue", seed: 1))
        }
    }

    /// The four rules, in their text forms.
    static let rules = SSHKeyRule.Types.allCases.flatMap { types in [false, true].map { SSHKeyRule(types: types, verifyRequired: $0) } }

    @Test(arguments: Backend.all) func aUsersSSHKeyRuleIsSetReadAndCleared(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            #expect(Self.rules.map(\.description) == ["sk", "sk,verify-required", "any", "any,verify-required"])
            #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: nil, keys: []))
            // A rule alone makes the user's row, and nothing else: no factor, the other overrides the policy's.
            let rule = SSHKeyRule(types: .any, verifyRequired: true)
            try await store.setSSHKeyRule(user: "alice", rule)
            let alice = try #require(try await store.user("alice"))
            #expect(alice.sshKeyRule == rule && !alice.hasFactor && alice.factorKinds == nil && alice.requirement == .policy)
            #expect(try await store.loginRecord("alice", setting: "policy").record?.sshKeyRule == rule)
            #expect(try await store.listUsers(after: nil, limit: 10).map(\.sshKeyRule) == [rule])
            // Without keys there is nothing to serve: no rule either.
            #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: nil, keys: []))
            // With keys: the keys in name order and the user's rule, whatever another user has.
            let blue = Self.key("blue", seed: 1), green = Self.key("green", seed: 2, type: "ssh-ed25519")
            try await store.addSSHKey(user: "alice", green)
            try await store.addSSHKey(user: "alice", blue)
            try await store.addSSHKey(user: "bob", Self.key("red", seed: 3))
            try await store.setSSHKeyRule(user: "carol", SSHKeyRule())
            #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: rule, keys: [blue, green]))
            #expect(try await store.authorizedSSHKeys(user: "bob") == UserSSHKeys(rule: nil, keys: [Self.key("red", seed: 3)]))
            #expect(try await store.authorizedSSHKeys(user: "carol") == UserSSHKeys(rule: nil, keys: []))
            // Each of the four, through both reads; the other overrides stay as they were.
            try await store.setFactorKinds(user: "alice", [.totp])
            try await store.setRequirement(user: "alice", .exempt)
            for each in Self.rules {
                try await store.setSSHKeyRule(user: "alice", each)
                #expect(try await store.user("alice")?.sshKeyRule == each)
                #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: each, keys: [blue, green]))
            }
            let kept = try #require(try await store.user("alice"))
            #expect(kept.factorKinds == [.totp] && kept.requirement == .exempt)
            // Durable.
            let reopened = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            #expect(try await reopened.user("alice")?.sshKeyRule == Self.rules.last)
            #expect(try await reopened.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: Self.rules.last, keys: [blue, green]))
            try await reopened.close()
            // Cleared: back to the policy's; the keys and the other overrides stay.
            try await store.setSSHKeyRule(user: "alice", nil)
            let cleared = try #require(try await store.user("alice"))
            #expect(cleared.sshKeyRule == nil && cleared.factorKinds == [.totp] && cleared.requirement == .exempt)
            #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: nil, keys: [blue, green]))
            try await store.setSSHKeyRule(user: "alice", nil)
            #expect(try await store.user("alice")?.sshKeyRule == nil)
        }
    }

    @Test(arguments: Backend.all) func theSSHKeyRuleColumnHoldsTheFourTextsOnly(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            try await store.addSSHKey(user: "alice", Self.key("blue", seed: 1))
            try await store.setSSHKeyRule(user: "alice", SSHKeyRule(types: .any))
            // The CHECK refuses what the store never writes, even a text the core would parse.
            for text in ["rsa", "SK", "", "sk,no-touch-required", "sk, verify-required", "verify-required"] {
                await #expect(throws: (any Error).self, "\(text)") {
                    try await backend.fault(dir, store, .sshKeyRuleText(user: "alice", text: text, bypassingCheck: false))
                }
            }
            #expect(try await store.user("alice")?.sshKeyRule == SSHKeyRule(types: .any))
            // Each of the four, written by raw SQL, reads as that rule.
            for rule in Self.rules {
                try await backend.fault(dir, store, .sshKeyRuleText(user: "alice", text: rule.description, bypassingCheck: false))
                #expect(try await store.authorizedSSHKeys(user: "alice").rule == rule)
            }
            // Past the CHECK: every read of the user reports the user and the column, and no crash.
            try await backend.fault(dir, store, .sshKeyRuleText(user: "alice", text: "rsa", bypassingCheck: true))
            let errors: [StoreError?] = [
                await #expect(throws: StoreError.self) { try await store.user("alice") },
                await #expect(throws: StoreError.self) { try await store.authorizedSSHKeys(user: "alice") },
                await #expect(throws: StoreError.self) { try await store.loginRecord("alice", setting: "policy") },
                await #expect(throws: StoreError.self) { try await store.listUsers(after: nil, limit: 10) },
            ]
            for error in errors {
                guard case .corruptRecord(let user, let reason)? = error else { Issue.record("\(String(describing: error))"); continue }
                #expect(user == "alice" && reason.contains("ssh_key_rule") && reason.contains("rsa"), "\(reason)")
            }
            // The keys alone are still read (listings use them), and other users are not touched.
            #expect(try await store.sshKeys(user: "alice").map(\.name) == ["blue"])
            try await store.addSSHKey(user: "bob", Self.key("blue", seed: 2))
            #expect(try await store.authorizedSSHKeys(user: "bob").keys.count == 1)
            // Setting a rule again mends it.
            try await store.setSSHKeyRule(user: "alice", nil)
            #expect(try await store.authorizedSSHKeys(user: "alice").rule == nil)
        }
    }
}
