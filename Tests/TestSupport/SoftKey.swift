import CCrypto
import Foundation
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol

/// A FIDO2 authenticator in software for the daemon's tests: it makes credentials (packed
/// attestation: self, or with a certificate) and assertions, the bytes a real key would give, so
/// the daemon's checks run on real signatures. The module's tests use the C fake through libfido2.
public final class SoftKey: @unchecked Sendable {
    public let algorithm: COSEAlgorithm
    public let credentialID: [UInt8]
    public let aaguid: [UInt8]
    public var counter: UInt32 = 0
    private let key: OpaquePointer

    public static let testAAGUID: [UInt8] = Array(0x10...0x1F)

    public init(algorithm: COSEAlgorithm = .es256, aaguid: [UInt8] = SoftKey.testAAGUID) throws {
        self.algorithm = algorithm
        self.aaguid = aaguid
        credentialID = try Crypto.randomBytes(48)
        guard let key = Self.generate(algorithm) else { throw HarnessError("cannot make a key pair") }
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    private static func generate(_ algorithm: COSEAlgorithm) -> OpaquePointer? {
        guard let context = EVP_PKEY_CTX_new_id(algorithm == .es256 ? EVP_PKEY_EC : EVP_PKEY_ED25519, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else { return nil }
        if algorithm == .es256, EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, NID_X9_62_prime256v1) != 1 { return nil }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen(context, &key) == 1 else { return nil }
        return key
    }

    /// ES256: 0x04 ‖ x ‖ y; EdDSA: 32 bytes (the DER SubjectPublicKeyInfo without its fixed prefix).
    public var publicKey: [UInt8] { Self.rawPublicKey(key) }

    static func rawPublicKey(_ key: OpaquePointer) -> [UInt8] {
        var buffer: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(key, &buffer)
        guard length > 0, let buffer else { return [] }
        defer { CRYPTO_free(buffer, #file, #line) }
        let der = Array(UnsafeBufferPointer(start: buffer, count: Int(length)))
        return Array(der.suffix(EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? 32 : 65))
    }

    /// The COSE_Key of the public key, CBOR as CTAP2 writes it.
    public var coseKey: [UInt8] {
        let raw = publicKey
        switch algorithm {
        case .es256: return [0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20] + raw[1..<33] + [0x22, 0x58, 0x20] + raw[33..<65]
        case .edDSA: return [0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20] + raw
        }
    }

    public func sign(_ message: [UInt8]) -> [UInt8] { Self.sign(key, message) }

    static func sign(_ key: OpaquePointer, _ message: [UInt8]) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { return [] }
        defer { EVP_MD_CTX_free(context) }
        let ed = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519
        guard EVP_DigestSignInit(context, nil, ed ? nil : EVP_sha256(), nil, key) == 1 else { return [] }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else { return [] }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else { return [] }
        return Array(signature.prefix(length))
    }

    /// Authenticator data: rpIdHash, flags, counter, and (for a registration) the attested credential.
    public func authenticatorData(rpID: String, userPresent: Bool = true, userVerified: Bool = false, attested: Bool = false) -> [UInt8] {
        var flags: UInt8 = (userPresent ? 0x01 : 0) | (userVerified ? 0x04 : 0)
        var tail: [UInt8] = []
        if attested {
            flags |= 0x40
            tail = aaguid + [UInt8(credentialID.count >> 8), UInt8(credentialID.count & 0xFF)] + credentialID + coseKey
        }
        let count = withUnsafeBytes(of: counter.bigEndian, Array.init)
        return Crypto.sha256(Array(rpID.utf8)) + [flags] + count + tail
    }

    /// What `twofoldctl key add` sends for this key over `challenge` (base64 of a `KeyChallenge`).
    public func register(_ challenge: KeyChallenge, userVerified: Bool = true, signOver: [UInt8]? = nil,
                         attestation: (key: OpaquePointer, certificate: [UInt8])? = nil) -> KeyRegistration {
        let hash = signOver ?? Array(Data(base64Encoded: challenge.challenge) ?? Data())
        let data = authenticatorData(rpID: challenge.rpID, userVerified: userVerified, attested: true)
        let signer = attestation?.key ?? key
        return KeyRegistration(format: "packed", authData: Data(data).base64EncodedString(),
                               signature: Data(Self.sign(signer, data + hash)).base64EncodedString(),
                               certificates: attestation.map { [Data($0.certificate).base64EncodedString()] } ?? [])
    }

    /// The module's key response for `request`: an assertion (the counter moved first unless told).
    public func assert(_ request: KeyRequest, rpID: String? = nil, userPresent: Bool = true, userVerified: Bool = false,
                       counter: UInt32? = nil) -> KeyResponse {
        if let counter { self.counter = counter } else { self.counter += 1 }
        let data = authenticatorData(rpID: rpID ?? request.rpID, userPresent: userPresent, userVerified: userVerified)
        return KeyResponse(status: .ok, assertion: .init(credentialID: credentialID, authenticatorData: data,
                                                         signature: sign(data + request.challenge)))
    }

    /// A private key from a PEM file (an attestation key made by `openssl` in a test); free it with EVP_PKEY_free.
    public static func loadPrivateKey(pem path: String) throws -> OpaquePointer {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let bio = BIO_new_mem_buf(text, Int32(text.utf8.count)) else { throw HarnessError("BIO") }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else { throw HarnessError("cannot read \(path)") }
        return key
    }
}
