import TwofoldCrypto

/// Fresh OTP secrets.
public enum OTPSecret {
    /// 160 bits, RFC 4226 R6.
    public static let defaultByteCount = 20

    /// `byteCount` bytes from the CSPRNG. Throws `CoreError.invalidParameters` outside 16...128
    /// bytes (RFC 4226 R6 requires at least 128 bits).
    public static func generate(byteCount: Int = defaultByteCount) throws -> SecretBytes {
        guard (16...128).contains(byteCount) else {
            throw CoreError.invalidParameters("secret length must be 16 to 128 bytes (got \(byteCount))")
        }
        return try SecretBytes(randomCount: byteCount)
    }
}
