import TwofoldCore
import TwofoldCrypto

/// What a sealed blob holds; part of its associated data so a blob cannot stand in for another kind.
package enum SealPurpose: String, Sendable {
    /// An active factor's OTP secret (the AAD also names the factor).
    case factor
    /// A pending (not yet confirmed) factor's OTP secret (the AAD also names the factor).
    case pendingFactor = "pending-factor"
    /// Schema v2's one active OTP secret per user (AAD: user only); read only by the v3 migration.
    case secret
    /// Schema v2's pending OTP secret (AAD: user only); read only by the v3 migration.
    case pending
    /// A recovery code's salt and hash (the AAD also names the code's index).
    case recovery
    /// The database's known-plaintext key check (no user).
    case keycheck
}

/// Seals and opens values at rest: version 1 ‖ 12-byte random nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag,
/// with AAD "twofold/v1/<purpose>/<user>", then "/<factor name>" for factor secrets or "/<index>"
/// for recovery codes. A factor name has no '/', so the AAD names exactly one (user, factor): a
/// blob copied to another user or another factor does not open.
package struct Sealer: Sendable {
    package static let version: UInt8 = 1
    package static let overhead = 1 + AESGCM.nonceLength + AESGCM.tagLength

    package let key: SecretBytes

    package init(keys: SealingKeys) {
        key = keys.secretKey
    }

    package static func aad(_ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) -> [UInt8] {
        var text = "twofold/v1/\(purpose.rawValue)/\(user)"
        if let factor { text += "/\(factor)" }
        if let index { text += "/\(index)" }
        return Array(text.utf8)
    }

    package func seal(_ plaintext: UnsafeRawBufferPointer, _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> [UInt8] {
        let nonce = try Crypto.randomBytes(AESGCM.nonceLength)
        let body = try AESGCM.seal(key: key, nonce: nonce, plaintext: plaintext,
                                   aad: Self.aad(purpose, user: user, index: index, factor: factor))
        var out: [UInt8] = []
        out.reserveCapacity(1 + nonce.count + body.count)
        out.append(Self.version)
        out += nonce
        out += body
        return out
    }

    package func seal(_ secret: SecretBytes, _ purpose: SealPurpose, user: String, factor: String? = nil) throws -> [UInt8] {
        try secret.withUnsafeBytes { try seal($0, purpose, user: user, factor: factor) }
    }

    /// Opens a sealed blob; any failure is a `StoreError.corruptRecord` naming `user` and the problem.
    package func open(_ sealed: [UInt8], _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> SecretBytes {
        guard sealed.count >= Self.overhead else {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) is truncated (\(sealed.count) bytes)")
        }
        guard sealed[0] == Self.version else {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) has unknown format version \(sealed[0])")
        }
        let nonce = Array(sealed[1 ..< 1 + AESGCM.nonceLength])
        let body = Array(sealed[(1 + AESGCM.nonceLength)...])
        do {
            return try AESGCM.open(key: key, nonce: nonce, sealed: body, aad: Self.aad(purpose, user: user, index: index, factor: factor))
        } catch {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) does not authenticate (tampered, or sealed for another user, factor or key)")
        }
    }

    /// Seals a recovery code hash as salt length (1 byte) ‖ salt ‖ hash.
    package func sealRecovery(_ code: RecoveryCodeHash, user: String, index: Int) throws -> [UInt8] {
        guard code.salt.count <= 255 else { throw StoreError.database("recovery code salt longer than 255 bytes") }
        var plain = [UInt8(code.salt.count)] + code.salt + code.hash
        defer { Crypto.wipe(&plain) }
        return try plain.withUnsafeBytes { try seal($0, .recovery, user: user, index: index) }
    }

    package func openRecovery(_ sealed: [UInt8], user: String, index: Int) throws -> RecoveryCodeHash {
        let opened = try open(sealed, .recovery, user: user, index: index)
        var plain = opened.copyBytes()
        defer { Crypto.wipe(&plain) }
        guard let saltCount = plain.first.map(Int.init), plain.count >= 1 + saltCount else {
            throw StoreError.corruptRecord(user: user, reason: "recovery code \(index) has a malformed body")
        }
        return RecoveryCodeHash(salt: Array(plain[1 ..< 1 + saltCount]), hash: Array(plain[(1 + saltCount)...]))
    }
}
