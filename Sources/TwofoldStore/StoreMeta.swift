import TwofoldCrypto

/// The rows of the key–value table every backend keeps next to its schema since v4 (SQLite's
/// `meta`, PostgreSQL's `twofold_meta`): the key checks and the sealed recovery pepper, under the
/// same names and with the same meaning on both.
package enum StoreMeta {
    /// The sealed key check (`KeyCheck`) of the database's first key.
    package static let keyCheck = "key_check"

    /// The check of a key a rotation brought in.
    package static func keyCheck(_ id: KeyID) -> String { "\(keyCheck)/\(id.hex)" }

    /// Whether the row `name` holds a key check.
    package static func isKeyCheck(_ name: String) -> Bool { name == keyCheck || name.hasPrefix(keyCheck + "/") }

    /// The sealed recovery-code pepper (`TwofoldStore.recoveryPepper()`).
    package static let pepper = "recovery_pepper"

    /// The pepper's row: sealed like a secret (so a rekey re-seals it), for no user.
    package static func sealPepper(_ pepper: SecretBytes, with sealer: Sealer) throws -> [UInt8] {
        try pepper.withUnsafeBytes { try sealer.seal($0, .pepper, user: KeyCheck.owner) }
    }

    /// The pepper's row opened. A missing or unreadable row is a damaged database, or a keyring
    /// without the key it is under (a previous key removed before a rekey finished).
    package static func openPepper(_ sealed: [UInt8]?, with sealer: Sealer) throws -> SecretBytes {
        guard let sealed else { throw StoreError.database("the recovery pepper is missing; the database is damaged") }
        do {
            return try sealer.open(sealed, .pepper, user: KeyCheck.owner)
        } catch StoreError.corruptRecord(_, let reason) {
            throw StoreError.database("the recovery pepper is unreadable: \(reason)")
        }
    }
}
