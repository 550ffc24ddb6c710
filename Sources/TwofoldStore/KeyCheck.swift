import TwofoldCrypto

/// The store's key checks: a known plaintext sealed with a key, one per key the database knows
/// (the first when the store is created, one more for each key a rotation brings in). A key that
/// does not open its check back to that plaintext is the wrong key (`StoreError.wrongKey`). Every
/// backend keeps the sealed blobs next to its schema and checks them before it changes anything.
///
/// The rule for a keyring (`knownMembers`, then `checksToRegister`): at least one member must be a
/// key the database knows, else the daemon refuses to start (a wrong or mistyped key file never
/// becomes a new key); the members it does not know yet are then registered with a check of
/// their own. So a new key comes in only next to one the database knows.
package enum KeyCheck {
    /// The plaintext sealed in the key check; it opens only with the right key.
    package static let plaintext = Array("twofold key check v1".utf8)
    /// The key check carries no user; its AAD names none.
    package static let owner = ""

    /// A fresh sealed key check for a new store.
    package static func seal(with sealer: Sealer) throws -> [UInt8] {
        var plain = plaintext
        defer { Crypto.wipe(&plain) }
        return try plain.withUnsafeBytes { try sealer.seal($0, .keycheck, user: owner) }
    }

    /// Throws `StoreError.wrongKey` unless `sealed` opens with `sealer` (any member of its keyring) to the key check's plaintext.
    package static func verify(_ sealed: [UInt8], sealer: Sealer) throws {
        let opened: SecretBytes
        do {
            opened = try sealer.open(sealed, .keycheck, user: owner)
        } catch {
            throw StoreError.wrongKey
        }
        guard Crypto.constantTimeEqual(opened.copyBytes(), plaintext) else {
            throw StoreError.wrongKey
        }
    }

    /// The members of `keyring` that the stored checks (every one the database holds, format 1 or
    /// 2) vouch for. Throws `StoreError.wrongKey` when there is none, or when a check names a
    /// member by id and does not open with it.
    package static func knownMembers(of keyring: Keyring, stored: [[UInt8]]) throws -> [KeyID] {
        var known: [KeyID] = []
        for sealed in stored {
            if let id = Sealer.keyID(of: sealed) {
                guard let member = keyring.member(id) else { continue }
                try verify(sealed, sealer: Sealer(keys: member))
                known.append(id)
            } else if let member = keyring.members.first(where: { (try? verify(sealed, sealer: Sealer(keys: $0))) != nil }) {
                // Format 1 names no key: the member that opens it is the database's first key.
                known.append(member.id)
            }
        }
        guard !known.isEmpty else { throw StoreError.wrongKey }
        return known
    }

    /// The member whose check is the database's format 1 one (the key of an installation made
    /// before key ids), if the keyring holds it.
    package static func legacyMember(of keyring: Keyring, stored: [[UInt8]]) -> SealingKeys? {
        for sealed in stored where Sealer.keyID(of: sealed) == nil {
            if let member = keyring.members.first(where: { (try? verify(sealed, sealer: Sealer(keys: $0))) != nil }) { return member }
        }
        return nil
    }

    /// Fresh checks for the members the stored checks do not know, to store next to them. Call it
    /// only after `knownMembers` found one.
    package static func checksToRegister(for keyring: Keyring, stored: [[UInt8]]) throws -> [(id: KeyID, sealed: [UInt8])] {
        let known = Set(try knownMembers(of: keyring, stored: stored))
        return try keyring.members.filter { !known.contains($0.id) }.map { ($0.id, try seal(with: Sealer(keys: $0))) }
    }
}
