import TwofoldCrypto

/// HOTP (RFC 4226) and TOTP (RFC 6238) code generation.
public enum OneTimeCode {
    /// RFC 4226: HMAC of the big-endian counter, dynamic truncation, zero-padded to `digits` (1...10).
    public static func hotp(secret: SecretBytes, counter: UInt64, digits: Int, algorithm: HashAlgorithm) -> String {
        var bytes = hotpDigits(secret: secret, counter: counter, digits: digits, algorithm: algorithm)
        defer { Crypto.wipe(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The time step: floor(t / period) with T0 = 0, flooring for negative times too. `period` must be positive.
    public static func step(unixTime: Int64, period: Int) -> Int64 {
        precondition(period > 0, "TOTP period must be positive")
        let p = Int64(period)
        let (q, r) = unixTime.quotientAndRemainder(dividingBy: p)
        return r < 0 ? q - 1 : q
    }

    /// RFC 6238: the HOTP code of the time step containing `unixTime`.
    public static func totp(secret: SecretBytes, unixTime: Int64, parameters: OTPParameters) -> String {
        let s = step(unixTime: unixTime, period: parameters.period)
        return hotp(secret: secret, counter: UInt64(bitPattern: s), digits: parameters.digits, algorithm: parameters.algorithm)
    }

    /// The code as ASCII digit bytes; the caller wipes them.
    static func hotpDigits(secret: SecretBytes, counter: UInt64, digits: Int, algorithm: HashAlgorithm) -> [UInt8] {
        precondition((1...10).contains(digits), "digits must be 1 to 10")
        var message = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { message[i] = UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * i)) }
        var mac = Crypto.hmac(algorithm, key: secret, data: message)
        defer { Crypto.wipe(&mac) }
        let offset = Int(mac[mac.count - 1] & 0x0f)
        var binary = (UInt64(mac[offset] & 0x7f) << 24) | (UInt64(mac[offset + 1]) << 16)
            | (UInt64(mac[offset + 2]) << 8) | UInt64(mac[offset + 3])
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        for i in stride(from: digits - 1, through: 0, by: -1) {
            out[i] = UInt8(ascii: "0") + UInt8(binary % 10)
            binary /= 10
        }
        binary = 0
        return out
    }
}
