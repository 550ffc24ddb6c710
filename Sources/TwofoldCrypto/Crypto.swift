import CCrypto

/// Errors from the crypto layer. None of them carries secret material.
public enum CryptoError: Error, Equatable, CustomStringConvertible {
    case randomUnavailable
    case invalidKeyLength(expected: Int, got: Int)
    case invalidNonceLength
    case authenticationFailed
    case openSSLFailure(String)

    public var description: String {
        switch self {
        case .randomUnavailable: return "the system random generator failed"
        case .invalidKeyLength(let e, let g): return "key must be \(e) bytes, got \(g)"
        case .invalidNonceLength: return "nonce must be 12 bytes"
        case .authenticationFailed: return "ciphertext failed authentication (wrong key, wrong owner, or tampered data)"
        case .openSSLFailure(let what): return "OpenSSL failure in \(what)"
        }
    }
}

/// Hash functions usable for HMAC (the three of RFC 6238).
public enum HashAlgorithm: String, Sendable, Codable, CaseIterable {
    case sha1 = "SHA1", sha256 = "SHA256", sha512 = "SHA512"

    /// Output length in bytes.
    public var digestLength: Int {
        switch self { case .sha1: 20; case .sha256: 32; case .sha512: 64 }
    }

    var evp: OpaquePointer? {
        switch self { case .sha1: EVP_sha1(); case .sha256: EVP_sha256(); case .sha512: EVP_sha512() }
    }
}

/// Thin, allocation-light wrappers over libcrypto.
public enum Crypto {
    /// HMAC of `data` under `key`.
    public static func hmac(_ algorithm: HashAlgorithm, key: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            HMAC(algorithm.evp, key.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(key.count),
                 data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, o.baseAddress, &length)
        }
        precondition(ok != nil && Int(length) == algorithm.digestLength, "HMAC failed in libcrypto")
        out.removeLast(64 - Int(length))
        return out
    }

    /// HMAC of `data` under a secret key.
    public static func hmac(_ algorithm: HashAlgorithm, key: SecretBytes, data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in data.withUnsafeBytes { d in hmac(algorithm, key: k, data: d) } }
    }

    /// HMAC of `data` under a plain key.
    public static func hmac(_ algorithm: HashAlgorithm, key: [UInt8], data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in data.withUnsafeBytes { d in hmac(algorithm, key: k, data: d) } }
    }

    /// SHA-256 of `data`.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBufferPointer { d in
            out.withUnsafeMutableBufferPointer { o in _ = SHA256(d.baseAddress, d.count, o.baseAddress) }
        }
        return out
    }

    /// `bytes` as lowercase hex digits, two per byte (for public values: key ids, fingerprints).
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(2 * bytes.count)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of lowercase or uppercase hex digits, two per byte; nil for anything else.
    public static func unhex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ d: UInt8) -> UInt8? {
            switch d {
            case 0x30...0x39: d - 0x30
            case 0x61...0x66: d - 0x61 + 10
            case 0x41...0x46: d - 0x41 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    /// `count` bytes from the CSPRNG (RAND_bytes).
    public static func randomBytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count == 0 || out.withUnsafeMutableBufferPointer({ RAND_bytes($0.baseAddress, Int32(count)) }) == 1 else {
            throw CryptoError.randomUnavailable
        }
        return out
    }

    /// A uniformly random integer in `0..<upperBound`, by rejection sampling.
    public static func randomInt(below upperBound: UInt32) throws -> UInt32 {
        precondition(upperBound > 0)
        let limit = UInt32.max - UInt32.max % upperBound
        while true {
            let b = try randomBytes(4)
            let v = b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            if v < limit { return v % upperBound }
        }
    }

    /// Constant-time comparison with CRYPTO_memcmp. A length mismatch returns false at once:
    /// lengths are public (code length, digest length).
    public static func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.count == 0 { return true }
        return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    /// Constant-time comparison of two byte arrays.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in constantTimeEqual(x, y) } }
    }

    /// Overwrites the array's bytes with zeros in a way the optimizer keeps.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
    }
}
