import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@_exported import TwofoldStoreTestSupport
@testable import TwofoldSQLite
@testable import TwofoldStore

func openStore(_ dir: String, keys: SealingKeys) throws -> SQLiteStore {
    try SQLiteStore(path: dir + "/twofold.db", keys: keys)
}

/// A store opened on a v4 database holding bob's override `required`, the setting `policy` = `{}`
/// and five successful logins of alice (at 1,000 to 1,004) without hosts, as both backends' v4 →
/// v5 tests write it: all of it kept, and what v5 to v9 add works.
func expectV4DataKeptAndV5Working(_ store: any TwofoldStore) async throws {
    #expect(try await store.setting("policy") == "{}")
    #expect(try await store.user("bob")?.requirement == .required)
    let audit = try await store.audit(AuditQuery())
    #expect(audit.map(\.timeMillis) == (0..<5).map { Int64(1_000 + $0) } && audit.allSatisfy { $0.host == nil })
    #expect(try await store.lastSuccessHosts(users: ["alice"]).isEmpty)
    _ = try await store.commit([.audit(AuditRecord(timeMillis: 2_000, action: "verify", user: "alice", outcome: "success", host: "h-1"))])
    #expect(try await store.lastSuccessHosts(users: ["alice"]) == ["alice": "h-1"])
    try await store.addHostCertificate(HostCertificate(host: "h-1", fingerprint: String(repeating: "a", count: 64), addedMillis: 1))
    #expect(try await store.hostCertificates(host: nil).count == 1)
    // v6: hosts moved in.
    #expect(try await store.movedAuditMark(host: "h-1") == nil)
    // v7: contacts (bob, who had only an override, keeps it and gets one).
    try await store.addContact(user: "bob", Contact(channel: .email, value: "bob@example.com", addedMillis: 3_000, verifiedMillis: 3_000))
    let bob = try await store.user("bob")
    #expect(bob?.contacts.map(\.value) == ["bob@example.com"] && bob?.requirement == .required && bob?.status == .active)
    #expect(try await store.sendCounts(user: "bob", destination: "bob@example.com", host: "h-1", since: 0) == DeliverySendCounts(user: 0, destination: 0, host: 0))
    // v8: keys; v9: SSH keys.
    try await expectV8Working(store, user: "bob")
    try await expectV9Working(store, user: "bob")
}

/// What schema v8 adds works on a migrated store: `user` (who has no key yet) gets one, reads it
/// back, and an assertion of it moves its counter once; nothing of it is sealed.
func expectV8Working(_ store: any TwofoldStore, user: String) async throws {
    let counts = try await store.sealedValueCounts()
    let key = Fido2Credential(name: "key", id: [1, 2, 3], algorithm: .edDSA, publicKey: Array(repeating: 7, count: 32), signCount: 1,
                              addedAtMillis: 4_000)
    try await store.addKey(user: user, key)
    #expect(try await store.user(user)?.keys == [key])
    #expect(try await store.sealedValueCounts() == counts)
    let use = FactorUse.keyAssertion(name: "key", credential: key.id, signCount: 2)
    #expect(try await store.commit([.accept(user: user, use: use, atMillis: 5_000), .accept(user: user, use: use, atMillis: 5_000)])
            == [.applied, .conflict])
}

/// What schema v9 adds works on a migrated store: `user` gets an SSH key, which is read back and
/// listed, and is no factor, and an SSH key rule, read back with it; nothing of it is sealed.
func expectV9Working(_ store: any TwofoldStore, user: String) async throws {
    let counts = try await store.sealedValueCounts()
    let kinds = try await store.user(user)?.kinds
    let type = "sk-ssh-ed25519@openssh.com"
    let fields: [[UInt8]] = [Array(type.utf8), Array(repeating: 9, count: 32), Array("ssh:".utf8)]
    let blob: [UInt8] = fields.flatMap { field -> [UInt8] in [0, 0, 0, UInt8(field.count)] + field }
    let key = SSHKeyRecord(name: "ssh", key: SSHPublicKey(type: type, blob: blob, comment: "a comment"), addedAtMillis: 7_000)
    try await store.addSSHKey(user: user, key)
    #expect(try await store.sshKeys(user: user) == [key])
    #expect(try await store.listSSHKeys(after: nil, limit: 10) == [UserSSHKey(user: user, key: key)])
    // The user's SSH key rule (a column v9 adds to users), read with the keys.
    let rule = SSHKeyRule(types: .any, verifyRequired: true)
    try await store.setSSHKeyRule(user: user, rule)
    #expect(try await store.user(user)?.sshKeyRule == rule)
    #expect(try await store.authorizedSSHKeys(user: user) == UserSSHKeys(rule: rule, keys: [key]))
    #expect(try await store.user(user)?.kinds == kinds)
    #expect(try await store.sealedValueCounts() == counts)
}

/// The bytes of every file of the database (main, -wal, -shm when present), by suffix.
func databaseFiles(_ dir: String) -> [String: [UInt8]] {
    var files: [String: [UInt8]] = [:]
    for suffix in ["", "-wal", "-shm"] {
        if let data = FileManager.default.contents(atPath: dir + "/twofold.db" + suffix) {
            files[suffix] = Array(data)
        }
    }
    return files
}

/// True if `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    let last = haystack.count - needle.count
    while i <= last {
        if haystack[i] == first, haystack[i ..< i + needle.count].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}
