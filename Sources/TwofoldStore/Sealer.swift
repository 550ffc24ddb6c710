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
    /// The installation's recovery-code pepper (no user).
    case pepper = "recovery-pepper"
}

/// Seals and opens values at rest under a keyring. Format 2 (everything sealed now):
/// version 2 ‖ key id (8 bytes) ‖ 12-byte random nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag, with AAD
/// "twofold/v2/<key id>/<purpose>/<user>", then "/<factor name>" for factor secrets or "/<index>" for
/// recovery codes. Format 1 (written before key ids; opened, never written): version 1 ‖ nonce ‖
/// ciphertext ‖ tag, AAD "twofold/v1/<purpose>/<user>...". A factor name has no '/', so the AAD names
/// exactly one (user, factor): a blob copied to another user or another factor does not open. The key
/// id picks the keyring's member and is bound by the AAD, so a blob relabelled with another key's id
/// does not open either.
package struct Sealer: Sendable {
    package static let version: UInt8 = 2
    package static let legacyVersion: UInt8 = 1
    package static let overhead = 1 + KeyID.length + AESGCM.nonceLength + AESGCM.tagLength
    package static let legacyOverhead = 1 + AESGCM.nonceLength + AESGCM.tagLength

    /// The sealing key's AES key.
    package let key: SecretBytes
    package let keyring: Keyring

    package init(keys: SealingKeys) {
        self.init(keyring: Keyring(sealing: keys))
    }

    package init(keyring: Keyring) {
        self.keyring = keyring
        key = keyring.sealing.secretKey
    }

    /// The id of the key new blobs are sealed under.
    package var keyID: KeyID { keyring.sealing.id }

    /// The first bytes of every blob sealed under the sealing key (version ‖ key id): a backend
    /// finds the blobs a rekey still has to do by comparing them.
    package var sealingPrefix: [UInt8] { [Self.version] + keyID.bytes }

    /// Format 1's AAD.
    package static func aad(_ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) -> [UInt8] {
        Array(("twofold/v1/" + aadTail(purpose, user: user, index: index, factor: factor)).utf8)
    }

    /// Format 2's AAD: it names the key too.
    package static func aad(_ keyID: KeyID, _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) -> [UInt8] {
        Array(("twofold/v2/\(keyID.hex)/" + aadTail(purpose, user: user, index: index, factor: factor)).utf8)
    }

    private static func aadTail(_ purpose: SealPurpose, user: String, index: Int?, factor: String?) -> String {
        var text = "\(purpose.rawValue)/\(user)"
        if let factor { text += "/\(factor)" }
        if let index { text += "/\(index)" }
        return text
    }

    /// Seals under the sealing key, format 2.
    package func seal(_ plaintext: UnsafeRawBufferPointer, _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> [UInt8] {
        let nonce = try Crypto.randomBytes(AESGCM.nonceLength)
        let body = try AESGCM.seal(key: key, nonce: nonce, plaintext: plaintext,
                                   aad: Self.aad(keyID, purpose, user: user, index: index, factor: factor))
        var out: [UInt8] = []
        out.reserveCapacity(1 + KeyID.length + nonce.count + body.count)
        out.append(Self.version)
        out += keyID.bytes
        out += nonce
        out += body
        return out
    }

    package func seal(_ secret: SecretBytes, _ purpose: SealPurpose, user: String, factor: String? = nil) throws -> [UInt8] {
        try secret.withUnsafeBytes { try seal($0, purpose, user: user, factor: factor) }
    }

    /// Opens a sealed blob of either format with the keyring; any failure is a
    /// `StoreError.corruptRecord` naming `user` and the problem.
    package func open(_ sealed: [UInt8], _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> SecretBytes {
        switch sealed.first {
        case Self.version?:
            return try openCurrent(sealed, purpose, user: user, index: index, factor: factor)
        case Self.legacyVersion?:
            return try openLegacy(sealed, purpose, user: user, index: index, factor: factor)
        case let other?:
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) has unknown format version \(other)")
        case nil:
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) is truncated (0 bytes)")
        }
    }

    private func openCurrent(_ sealed: [UInt8], _ purpose: SealPurpose, user: String, index: Int?, factor: String?) throws -> SecretBytes {
        guard sealed.count >= Self.overhead else {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) is truncated (\(sealed.count) bytes)")
        }
        // Compared in place: no id is made on the login path unless it names no member.
        let idBytes = sealed[1 ... KeyID.length]
        let sealing = keyring.sealing
        let found = sealing.id.bytes.elementsEqual(idBytes) ? sealing : keyring.previous.first { $0.id.bytes.elementsEqual(idBytes) }
        guard let member = found else {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) is under key \(KeyID(bytes: idBytes)?.hex ?? "?"), "
                                           + "which this daemon does not hold (removed from the keyring before a rekey finished?)")
        }
        let id = member.id
        let nonceStart = 1 + KeyID.length
        let nonce = Array(sealed[nonceStart ..< nonceStart + AESGCM.nonceLength])
        let body = Array(sealed[(nonceStart + AESGCM.nonceLength)...])
        do {
            return try AESGCM.open(key: member.secretKey, nonce: nonce, sealed: body,
                                   aad: Self.aad(id, purpose, user: user, index: index, factor: factor))
        } catch {
            throw Self.notAuthentic(purpose, user: user)
        }
    }

    /// Format 1 names no key: the member that made it is the one that opens it. Previous keys are
    /// tried first (format 1 blobs predate every rotation, so they are under the oldest key).
    private func openLegacy(_ sealed: [UInt8], _ purpose: SealPurpose, user: String, index: Int?, factor: String?) throws -> SecretBytes {
        guard sealed.count >= Self.legacyOverhead else {
            throw StoreError.corruptRecord(user: user, reason: "sealed \(purpose.rawValue) is truncated (\(sealed.count) bytes)")
        }
        let nonce = Array(sealed[1 ..< 1 + AESGCM.nonceLength])
        let body = Array(sealed[(1 + AESGCM.nonceLength)...])
        let aad = Self.aad(purpose, user: user, index: index, factor: factor)
        for member in keyring.previous + [keyring.sealing] {
            if let opened = try? AESGCM.open(key: member.secretKey, nonce: nonce, sealed: body, aad: aad) { return opened }
        }
        throw Self.notAuthentic(purpose, user: user)
    }

    private static func notAuthentic(_ purpose: SealPurpose, user: String) -> StoreError {
        .corruptRecord(user: user, reason: "sealed \(purpose.rawValue) does not authenticate (tampered, or sealed for another user, factor or key)")
    }

    /// The key id a format 2 blob names; nil for format 1 (or anything else).
    package static func keyID(of sealed: [UInt8]) -> KeyID? {
        guard sealed.count > KeyID.length, sealed[0] == version else { return nil }
        return KeyID(bytes: sealed[1 ... KeyID.length])
    }

    /// Whether `sealed` is already under the sealing key (format 2 naming it). Authenticity is not checked.
    package func isCurrent(_ sealed: [UInt8]) -> Bool {
        sealed.count > KeyID.length && sealed.starts(with: sealingPrefix)
    }

    /// The same value sealed under the sealing key, or nil when it already is. Throws like `open`.
    package func reseal(_ sealed: [UInt8], _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> [UInt8]? {
        guard !isCurrent(sealed) else { return nil }
        let opened = try open(sealed, purpose, user: user, index: index, factor: factor)
        return try opened.withUnsafeBytes { try seal($0, purpose, user: user, index: index, factor: factor) }
    }

    /// A recovery code body that carries its own pepper starts with this byte where a plain body
    /// has its salt length (so a plain body's salt is at most 254 bytes; every salt is 16).
    static let pepperedBody: UInt8 = 0xFF

    /// Seals a recovery code hash as salt length (1 byte) ‖ salt ‖ hash; one with a pepper of its
    /// own (moved in from a host, schema v6) as 0xFF ‖ salt length ‖ salt ‖ hash length ‖ hash ‖
    /// pepper, so the pepper is sealed, re-sealed by a rekey and removed with its code.
    package func sealRecovery(_ code: RecoveryCodeHash, user: String, index: Int) throws -> [UInt8] {
        guard code.salt.count < Self.pepperedBody, code.hash.count <= 255 else {
            throw StoreError.database("recovery code salt or hash too long")
        }
        var plain = [UInt8(code.salt.count)] + code.salt
        if let pepper = code.pepper {
            plain = [Self.pepperedBody] + plain + [UInt8(code.hash.count)] + code.hash + pepper.copyBytes()
        } else {
            plain += code.hash
        }
        defer { Crypto.wipe(&plain) }
        return try plain.withUnsafeBytes { try seal($0, .recovery, user: user, index: index) }
    }

    package func openRecovery(_ sealed: [UInt8], user: String, index: Int) throws -> RecoveryCodeHash {
        let opened = try open(sealed, .recovery, user: user, index: index)
        var plain = opened.copyBytes()
        defer { Crypto.wipe(&plain) }
        let peppered = plain.first == Self.pepperedBody
        var at = peppered ? 1 : 0
        guard let salt = Self.field(plain, at: &at), let hash = peppered ? Self.field(plain, at: &at) : Array(plain[at...]),
              !peppered || at < plain.count else {
            throw StoreError.corruptRecord(user: user, reason: "recovery code \(index) has a malformed body")
        }
        return RecoveryCodeHash(salt: salt, hash: hash, pepper: peppered ? SecretBytes(plain[at...]) : nil)
    }

    /// The length-prefixed field at `at`, moving `at` past it; nil when the body is too short.
    private static func field(_ plain: [UInt8], at: inout Int) -> [UInt8]? {
        guard at < plain.count, plain.count >= at + 1 + Int(plain[at]) else { return nil }
        defer { at += 1 + Int(plain[at]) }
        return Array(plain[at + 1 ..< at + 1 + Int(plain[at])])
    }
}
