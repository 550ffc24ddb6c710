import TwofoldCore

/// What both backends check of a key before storing it and the words they refuse it with. The
/// messages name the user and the key's name, never its credential id or public key (public, but
/// not for logs), nor the account a credential id already belongs to.
extension Fido2Credential {
    /// Throws `StoreError.conflict` unless the key is one a login could use: a valid name, a
    /// credential id of 1 to `maxIDLength` bytes, a public key of its algorithm's form, a 16-byte AAGUID.
    package func checkStorable(user: String) throws {
        guard FactorName.isValid(name) else { throw StoreError.conflict("'\(name)' is not a valid key name") }
        guard (1...Self.maxIDLength).contains(id.count) else {
            throw StoreError.conflict("key '\(name)' of user '\(user)' has a credential id of \(id.count) bytes (1 to \(Self.maxIDLength))")
        }
        let wellFormed = switch algorithm {
        case .es256: publicKey.count == 65 && publicKey.first == 0x04
        case .edDSA: publicKey.count == 32
        }
        guard wellFormed else { throw StoreError.conflict("key '\(name)' of user '\(user)' has no \(algorithm.name) public key") }
        guard aaguid.count == 16 else { throw StoreError.conflict("key '\(name)' of user '\(user)' has an AAGUID of \(aaguid.count) bytes") }
    }

    package static func nameTaken(user: String, name: String) -> StoreError {
        .conflict("user '\(user)' has a key named '\(name)' already")
    }

    /// The same key registered again (to this user under another name, or to another user).
    package static let credentialTaken = StoreError.conflict("this security key is registered already")
}

extension UserRecord {
    /// Adds a key read with the user (keys come in name order); its last use is a login, as an OTP
    /// factor's is, so it may be the user's last success.
    package mutating func appendKey(_ key: Fido2Credential) {
        keys.append(key)
        if let used = key.lastUsedMillis, used > lastSuccessMillis ?? .min { lastSuccessMillis = used }
    }
}
