import TwofoldCrypto

/// A FIDO2 key's authenticator data (WebAuthn §6.1), parsed strictly: what the key signs.
public struct AuthenticatorData: Sendable, Equatable {
    public var rpIDHash: [UInt8]
    public var flags: UInt8
    public var signCount: UInt32
    /// Present in a registration (flag AT).
    public var attested: AttestedCredential?
    /// The bytes as signed.
    public var raw: [UInt8]

    public struct AttestedCredential: Sendable, Equatable {
        public var aaguid: [UInt8]
        public var credentialID: [UInt8]
        public var algorithm: COSEAlgorithm
        /// ES256: 0x04 ‖ x ‖ y; EdDSA: 32 bytes.
        public var publicKey: [UInt8]
    }

    public static let userPresent: UInt8 = 0x01
    public static let userVerified: UInt8 = 0x04
    static let attestedData: UInt8 = 0x40
    static let extensionData: UInt8 = 0x80

    public var isUserPresent: Bool { flags & Self.userPresent != 0 }
    public var isUserVerified: Bool { flags & Self.userVerified != 0 }

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(_ raw: [UInt8]) throws {
        guard raw.count >= 37, raw.count <= 1_024 else { throw Invalid("authenticator data must be 37 to 1024 bytes") }
        self.raw = raw
        rpIDHash = Array(raw[0..<32])
        flags = raw[32]
        signCount = raw[33..<37].reduce(0) { $0 << 8 | UInt32($1) }
        var offset = 37
        if flags & Self.attestedData != 0 {
            attested = try Self.attestedCredential(raw, &offset)
        }
        if flags & Self.extensionData != 0 {
            // Extensions are not used; they must still be one well-formed CBOR map.
            guard case .map = try CBOR.decode(raw, offset: &offset) else { throw Invalid("authenticator extensions must be a CBOR map") }
        }
        guard offset == raw.count else { throw Invalid("authenticator data has trailing bytes") }
    }

    private static func attestedCredential(_ raw: [UInt8], _ offset: inout Int) throws -> AttestedCredential {
        guard raw.count - offset >= 18 else { throw Invalid("attested credential data cut short") }
        let aaguid = Array(raw[offset..<offset + 16])
        let length = Int(raw[offset + 16]) << 8 | Int(raw[offset + 17])
        offset += 18
        guard length >= 1, length <= Fido2Credential.maxIDLength, raw.count - offset >= length else {
            throw Invalid("credential id length out of range")
        }
        let id = Array(raw[offset..<offset + length])
        offset += length
        let key = try CBOR.decode(raw, offset: &offset)
        let (algorithm, publicKey) = try COSEKey.parse(key)
        return AttestedCredential(aaguid: aaguid, credentialID: id, algorithm: algorithm, publicKey: publicKey)
    }

    /// Whether the data was made for relying party `rpID`.
    public func isFor(rpID: String) -> Bool {
        Crypto.sha256(Array(rpID.utf8)) == rpIDHash
    }
}

/// COSE public keys (RFC 9053) of the two algorithms Twofold accepts.
public enum COSEKey {
    public static func parse(_ key: CBOR) throws -> (COSEAlgorithm, [UInt8]) {
        typealias Invalid = AuthenticatorData.Invalid
        guard let alg = key[3]?.int, let algorithm = COSEAlgorithm(rawValue: Int(alg)) else {
            throw Invalid("the key's algorithm is neither ES256 nor EdDSA")
        }
        switch algorithm {
        case .es256:
            // kty EC2 (2), crv P-256 (1), x and y of 32 bytes each.
            guard key[1]?.int == 2, key[-1]?.int == 1, case .bytes(let x)? = key[-2], case .bytes(let y)? = key[-3],
                  x.count == 32, y.count == 32 else { throw Invalid("not a P-256 public key") }
            return (algorithm, [0x04] + x + y)
        case .edDSA:
            // kty OKP (1), crv Ed25519 (6), x of 32 bytes.
            guard key[1]?.int == 1, key[-1]?.int == 6, case .bytes(let x)? = key[-2], x.count == 32 else {
                throw Invalid("not an Ed25519 public key")
            }
            return (algorithm, x)
        }
    }
}
