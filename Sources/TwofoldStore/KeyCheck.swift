import TwofoldCrypto

/// The store's key check: a known plaintext sealed with the key when the store is created; a key
/// that does not open it back to that plaintext is the wrong key (`StoreError.wrongKey`). Every
/// backend keeps the sealed blob next to its schema and checks it before it changes anything.
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

    /// Throws `StoreError.wrongKey` unless `sealed` opens with `sealer` to the key check's plaintext.
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
}
