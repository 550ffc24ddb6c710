import CCrypto

/// Signature checks over public keys: what a FIDO2 key and its attestation certificate sign.
/// Nothing here is secret; every failure is just `false`.
public enum Signatures {
    /// ECDSA P-256 with SHA-256: `publicKey` the 65-byte uncompressed point, `signature` DER.
    public static func verifyES256(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == 65, publicKey[0] == 0x04 else { return false }
        return verify(spki: p256Prefix + publicKey, message: message, signature: signature, sha256: true)
    }

    /// Ed25519 (RFC 8032, pure): `publicKey` 32 bytes, `signature` 64.
    public static func verifyEd25519(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == 32, signature.count == 64 else { return false }
        return verify(spki: ed25519Prefix + publicKey, message: message, signature: signature, sha256: false)
    }

    /// A DER SubjectPublicKeyInfo is a fixed prefix before the raw key for both curves, so the key
    /// is parsed by libcrypto's own d2i_PUBKEY rather than assembled field by field.
    static let p256Prefix: [UInt8] = [0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
                                      0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00]
    static let ed25519Prefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    static func verify(spki: [UInt8], message: [UInt8], signature: [UInt8], sha256: Bool) -> Bool {
        guard let key = spki.withUnsafeBufferPointer({ buffer -> OpaquePointer? in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_PUBKEY(nil, &pointer, buffer.count)
        }) else { return false }
        defer { EVP_PKEY_free(key) }
        return verify(key: key, message: message, signature: signature, sha256: sha256)
    }

    /// Verifies with an EVP key (a certificate's); SHA-256 for ECDSA, none for Ed25519.
    static func verify(key: OpaquePointer, message: [UInt8], signature: [UInt8], sha256: Bool) -> Bool {
        guard !signature.isEmpty, let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, sha256 ? EVP_sha256() : nil, nil, key) == 1 else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}

/// An X.509 certificate from DER, for FIDO2 attestation: its key checks the attestation
/// signature, and its chain must end at a CA the admin trusts.
public final class Certificate {
    let certificate: OpaquePointer

    public init?(der: [UInt8]) {
        guard let parsed = der.withUnsafeBufferPointer({ buffer -> OpaquePointer? in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_X509(nil, &pointer, buffer.count)
        }) else { return nil }
        certificate = parsed
    }

    deinit { X509_free(certificate) }

    /// Whether the certificate's key (ECDSA P-256 with SHA-256, or Ed25519) signed `message`.
    public func verifies(message: [UInt8], signature: [UInt8]) -> Bool {
        guard let key = X509_get_pubkey(certificate) else { return false }
        defer { EVP_PKEY_free(key) }
        return Signatures.verify(key: key, message: message, signature: signature, sha256: EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519)
    }

    /// The FIDO AAGUID extension (1.3.6.1.4.1.45724.1.1.4: an OCTET STRING of 16 bytes); nil when absent.
    public var aaguidExtension: [UInt8]? {
        guard let oid = OBJ_txt2obj("1.3.6.1.4.1.45724.1.1.4", 1) else { return nil }
        defer { ASN1_OBJECT_free(oid) }
        let index = X509_get_ext_by_OBJ(certificate, oid, -1)
        guard index >= 0, let ext = X509_get_ext(certificate, index), let data = X509_EXTENSION_get_data(ext) else { return nil }
        let bytes = Array(UnsafeBufferPointer(start: ASN1_STRING_get0_data(data), count: Int(ASN1_STRING_length(data))))
        // The extension's value is itself a DER OCTET STRING: 04 10 ‖ 16 bytes.
        guard bytes.count == 18, bytes[0] == 0x04, bytes[1] == 0x10 else { return [] }
        return Array(bytes[2...])
    }

    /// Whether this certificate chains (through `intermediates`) to one of the CA certificates in
    /// the PEM file `caFile`, valid now. Nil when the file cannot be read.
    public func chains(to caFile: String, intermediates: [Certificate]) -> Bool? {
        guard let store = X509_STORE_new() else { return false }
        defer { X509_STORE_free(store) }
        guard X509_STORE_load_file(store, caFile) == 1 else { return nil }
        guard let context = X509_STORE_CTX_new() else { return false }
        defer { X509_STORE_CTX_free(context) }
        guard let untrusted = OPENSSL_sk_new_null() else { return false }
        defer { OPENSSL_sk_free(untrusted) }
        for intermediate in intermediates { OPENSSL_sk_push(untrusted, UnsafeRawPointer(intermediate.certificate)) }
        guard X509_STORE_CTX_init(context, store, certificate, untrusted) == 1 else { return false }
        return withExtendedLifetime(intermediates) { X509_verify_cert(context) == 1 }
    }

    /// How many certificates the PEM file `path` holds; nil when it cannot be read or holds none.
    public static func countPEM(_ path: String) -> Int? {
        guard let store = X509_STORE_new() else { return nil }
        defer { X509_STORE_free(store) }
        guard X509_STORE_load_file(store, path) == 1, let objects = X509_STORE_get0_objects(store) else { return nil }
        let count = Int(OPENSSL_sk_num(objects))
        return count > 0 ? count : nil
    }
}
