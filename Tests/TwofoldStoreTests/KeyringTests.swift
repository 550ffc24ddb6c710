import Foundation
import Testing
import TwofoldCrypto
@testable import TwofoldStore

/// Sealing under a keyring: format 2 names its key, format 1 still opens, the key id picks the
/// member and is bound by the AAD; which keyrings a database's key checks accept.
@Suite struct KeyringTests {
    static func keys(_ byte: UInt8) throws -> SealingKeys {
        try SealingKeys(master: SecretBytes([UInt8](repeating: byte, count: 32)))
    }

    /// A blob as the code before key ids sealed it: version 1 ‖ nonce ‖ ciphertext ‖ tag, AAD "twofold/v1/...".
    static func legacyBlob(_ plaintext: [UInt8], keys: SealingKeys, user: String, factor: String) throws -> [UInt8] {
        let nonce = try Crypto.randomBytes(AESGCM.nonceLength)
        let body = try plaintext.withUnsafeBytes {
            try AESGCM.seal(key: keys.secretKey, nonce: nonce, plaintext: $0, aad: Sealer.aad(.factor, user: user, factor: factor))
        }
        return [1] + nonce + body
    }

    @Test func keyIDIsThePublicPrefixOfAnHMACOfTheMasterAndReadsBackFromHex() throws {
        let master = [UInt8](repeating: 7, count: 32)
        let keys = try SealingKeys(master: SecretBytes(master))
        #expect(keys.id.bytes == Array(Crypto.hmac(.sha256, key: master, data: Array("twofold v1 key id".utf8)).prefix(8)))
        #expect(keys.id.hex.count == 16 && KeyID(hex: keys.id.hex) == keys.id && KeyID(hex: keys.id.hex.uppercased()) == keys.id)
        #expect(KeyID(hex: "0123") == nil && KeyID(hex: "zz23456789abcdef") == nil)
        #expect(try Self.keys(1).id != Self.keys(2).id)
        // The id is not the sealing key's prefix, nor the pepper's.
        #expect(!keys.secretKey.copyBytes().starts(with: keys.id.bytes) && !keys.recoveryPepper.copyBytes().starts(with: keys.id.bytes))
    }

    @Test func formatTwoNamesItsKeyAndRoundTrips() throws {
        let a = try Self.keys(1)
        let sealer = Sealer(keys: a)
        let secret = SecretBytes(Array("12345678901234567890".utf8))
        let blob = try sealer.seal(secret, .factor, user: "alice", factor: "app")
        #expect(blob.count == Sealer.overhead + 20)
        #expect(blob[0] == 2 && Array(blob[1...8]) == a.id.bytes && Sealer.keyID(of: blob) == a.id)
        #expect(try sealer.open(blob, .factor, user: "alice", factor: "app").constantTimeEquals(secret))
        #expect(sealer.isCurrent(blob))
        // The AAD still binds user, factor and purpose.
        #expect(throws: StoreError.self) { try sealer.open(blob, .factor, user: "bob", factor: "app") }
        #expect(throws: StoreError.self) { try sealer.open(blob, .factor, user: "alice", factor: "tablet") }
        #expect(throws: StoreError.self) { try sealer.open(blob, .pendingFactor, user: "alice", factor: "app") }
    }

    @Test func theKeyringPicksTheMemberByIdWhicheverSeals() throws {
        let a = try Self.keys(1), b = try Self.keys(2)
        let blob = try Sealer(keys: a).seal(SecretBytes([1, 2, 3]), .factor, user: "alice", factor: "app")
        for keyring in [Keyring(sealing: b, previous: [a]), Keyring(sealing: a, previous: [b])] {
            #expect(try Sealer(keyring: keyring).open(blob, .factor, user: "alice", factor: "app").copyBytes() == [1, 2, 3])
        }
        #expect(Sealer(keyring: Keyring(sealing: b, previous: [a])).isCurrent(blob) == false)
        // New blobs go under the sealing key only.
        let sealed = try Sealer(keyring: Keyring(sealing: b, previous: [a])).seal(SecretBytes([4]), .factor, user: "alice", factor: "app")
        #expect(Sealer.keyID(of: sealed) == b.id)
    }

    @Test func anUnknownOrRelabelledKeyIdIsACorruptRecord() throws {
        let a = try Self.keys(1), b = try Self.keys(2)
        let blob = try Sealer(keys: a).seal(SecretBytes([1, 2, 3]), .factor, user: "alice", factor: "app")
        let unknown = #expect(throws: StoreError.self) { try Sealer(keys: b).open(blob, .factor, user: "alice", factor: "app") }
        guard case .corruptRecord(let user, let reason)? = unknown else { Issue.record("\(String(describing: unknown))"); return }
        #expect(user == "alice" && reason.contains("under key \(a.id)") && reason.contains("does not hold"))

        // The id swapped for another member's: that member's key does not open it (the AAD names the id).
        var relabelled = blob
        relabelled.replaceSubrange(1...8, with: b.id.bytes)
        let both = Sealer(keyring: Keyring(sealing: b, previous: [a]))
        let error = #expect(throws: StoreError.self) { try both.open(relabelled, .factor, user: "alice", factor: "app") }
        guard case .corruptRecord(_, let why)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(why.contains("does not authenticate"))
        #expect(throws: StoreError.self) { try both.open(Array(blob.prefix(20)), .factor, user: "alice", factor: "app") }
        #expect(throws: StoreError.self) { try both.open([3] + blob.dropFirst(), .factor, user: "alice", factor: "app") }
    }

    @Test func formatOneStillOpensWithTheKeyThatMadeIt() throws {
        let a = try Self.keys(1), b = try Self.keys(2)
        let blob = try Self.legacyBlob(Array("12345678901234567890".utf8), keys: a, user: "alice", factor: "app")
        for keyring in [Keyring(sealing: a), Keyring(sealing: b, previous: [a]), Keyring(sealing: a, previous: [b])] {
            #expect(try Sealer(keyring: keyring).open(blob, .factor, user: "alice", factor: "app").copyBytes() == Array("12345678901234567890".utf8))
        }
        #expect(throws: StoreError.self) { try Sealer(keys: b).open(blob, .factor, user: "alice", factor: "app") }
        #expect(throws: StoreError.self) { try Sealer(keys: a).open(blob, .factor, user: "bob", factor: "app") }
        #expect(Sealer.keyID(of: blob) == nil && !Sealer(keys: a).isCurrent(blob))

        // Re-sealed: format 2 under the sealing key; a current blob is left (nil).
        let sealer = Sealer(keyring: Keyring(sealing: b, previous: [a]))
        let resealed = try #require(try sealer.reseal(blob, .factor, user: "alice", factor: "app"))
        #expect(Sealer.keyID(of: resealed) == b.id)
        #expect(try Sealer(keys: b).open(resealed, .factor, user: "alice", factor: "app").copyBytes() == Array("12345678901234567890".utf8))
        #expect(try sealer.reseal(resealed, .factor, user: "alice", factor: "app") == nil)
    }

    @Test func aKeyringIsAcceptedOnlyWithAKeyTheDatabaseKnowsAndBringsInTheOthers() throws {
        let a = try Self.keys(1), b = try Self.keys(2), c = try Self.keys(3)
        let stored = [try KeyCheck.seal(with: Sealer(keys: a))]
        #expect(throws: StoreError.wrongKey) { try KeyCheck.knownMembers(of: Keyring(sealing: b), stored: stored) }
        #expect(throws: StoreError.wrongKey) { try KeyCheck.checksToRegister(for: Keyring(sealing: b, previous: [c]), stored: stored) }
        #expect(try KeyCheck.knownMembers(of: Keyring(sealing: b, previous: [a]), stored: stored) == [a.id])
        let new = try KeyCheck.checksToRegister(for: Keyring(sealing: b, previous: [a, c]), stored: stored)
        #expect(new.map(\.id) == [b.id, c.id])
        // Registered, they are known on their own.
        #expect(try KeyCheck.knownMembers(of: Keyring(sealing: c), stored: stored + new.map(\.sealed)) == [c.id])

        // A check that names a member but does not open with it is a wrong key, not an unknown one.
        var forged = new[0].sealed
        forged[forged.count - 1] ^= 1
        #expect(throws: StoreError.wrongKey) { try KeyCheck.knownMembers(of: Keyring(sealing: b, previous: [a]), stored: stored + [forged]) }

        // The format 1 check of an installation from before key ids: its key is the legacy member.
        var plain = KeyCheck.plaintext
        let nonce = try Crypto.randomBytes(AESGCM.nonceLength)
        let legacy = [UInt8(1)] + nonce + (try plain.withUnsafeBytes {
            try AESGCM.seal(key: a.secretKey, nonce: nonce, plaintext: $0, aad: Sealer.aad(.keycheck, user: KeyCheck.owner))
        })
        Crypto.wipe(&plain)
        #expect(try KeyCheck.knownMembers(of: Keyring(sealing: b, previous: [a]), stored: [legacy]) == [a.id])
        #expect(KeyCheck.legacyMember(of: Keyring(sealing: b, previous: [a]), stored: [legacy])?.id == a.id)
        #expect(KeyCheck.legacyMember(of: Keyring(sealing: a), stored: stored) == nil)
    }

    @Test func aKeyringKeepsOneOfEachKeyAndTheSealingKeyFirst() throws {
        let a = try Self.keys(1), b = try Self.keys(2)
        let keyring = Keyring(sealing: a, previous: [b, a, b])
        #expect(keyring.members.map(\.id) == [a.id, b.id])
        let c = try Self.keys(3)
        #expect(keyring.member(b.id)?.id == b.id && keyring.member(c.id) == nil)
    }
}
