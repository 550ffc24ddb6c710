import CCrypto

/// AES-256-GCM with a 12-byte nonce and a 16-byte tag.
public enum AESGCM {
    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16

    /// Encrypts `plaintext` bound to `aad`. Returns ciphertext followed by the tag.
    public static func seal(key: SecretBytes, nonce: [UInt8], plaintext: UnsafeRawBufferPointer, aad: [UInt8]) throws -> [UInt8] {
        guard key.count == keyLength else { throw CryptoError.invalidKeyLength(expected: keyLength, got: key.count) }
        guard nonce.count == nonceLength else { throw CryptoError.invalidNonceLength }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSLFailure("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        let ok: Bool = key.withUnsafeBytes { k in
            out.withUnsafeMutableBufferPointer { o -> Bool in
                var len: Int32 = 0
                guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1,
                      EVP_EncryptInit_ex(ctx, nil, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nonce) == 1
                else { return false }
                if !aad.isEmpty {
                    guard EVP_EncryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 else { return false }
                }
                var written = 0
                if plaintext.count > 0 {
                    guard EVP_EncryptUpdate(ctx, o.baseAddress, &len, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) == 1 else { return false }
                    written = Int(len)
                }
                guard EVP_EncryptFinal_ex(ctx, o.baseAddress! + written, &len) == 1 else { return false }
                return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), o.baseAddress! + plaintext.count) == 1
            }
        }
        guard ok else { throw CryptoError.openSSLFailure("AES-GCM seal") }
        return out
    }

    /// Decrypts ciphertext-plus-tag bound to `aad`. Throws `.authenticationFailed` on any mismatch.
    public static func open(key: SecretBytes, nonce: [UInt8], sealed: [UInt8], aad: [UInt8]) throws -> SecretBytes {
        guard key.count == keyLength else { throw CryptoError.invalidKeyLength(expected: keyLength, got: key.count) }
        guard nonce.count == nonceLength else { throw CryptoError.invalidNonceLength }
        guard sealed.count >= tagLength else { throw CryptoError.authenticationFailed }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSLFailure("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let bodyCount = sealed.count - tagLength
        var plain = [UInt8](repeating: 0, count: max(bodyCount, 1))
        defer { Crypto.wipe(&plain) }
        var tag = Array(sealed[bodyCount...])
        let ok: Bool = key.withUnsafeBytes { k in
            plain.withUnsafeMutableBufferPointer { p -> Bool in
                var len: Int32 = 0
                guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceLength), nil) == 1,
                      EVP_DecryptInit_ex(ctx, nil, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nonce) == 1
                else { return false }
                if !aad.isEmpty {
                    guard EVP_DecryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 else { return false }
                }
                var written = 0
                if bodyCount > 0 {
                    guard sealed.withUnsafeBufferPointer({ s in
                        EVP_DecryptUpdate(ctx, p.baseAddress, &len, s.baseAddress, Int32(bodyCount))
                    }) == 1 else { return false }
                    written = Int(len)
                }
                guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), &tag) == 1 else { return false }
                return EVP_DecryptFinal_ex(ctx, p.baseAddress! + written, &len) == 1
            }
        }
        guard ok else { throw CryptoError.authenticationFailed }
        return SecretBytes(plain[0..<bodyCount])
    }
}
