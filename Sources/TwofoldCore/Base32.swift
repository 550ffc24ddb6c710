import TwofoldCrypto

/// RFC 4648 base32, the encoding of OTP secrets in otpauth URIs and for typing by hand.
public enum Base32 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// RFC 4648 alphabet, upper case, no padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt32(bits)) & 0x1f)])
            }
        }
        if bits > 0 {
            out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 0x1f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Tolerant of what people type: lower case, spaces, dashes, with or without '=' padding.
    /// Anything else throws `CoreError.invalidBase32(reason)`; the reason never echoes the input.
    public static func decode(_ text: String) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 5 / 8)
        var buffer: UInt32 = 0
        var bits = 0
        var symbols = 0
        var padding = 0
        var position = 0
        for scalar in text.unicodeScalars {
            position += 1
            switch scalar {
            case " ", "\t", "\n", "\r", "-":
                continue
            case "=":
                padding += 1
                continue
            default:
                break
            }
            guard padding == 0 else {
                Crypto.wipe(&out)
                throw CoreError.invalidBase32("character at position \(position) follows '=' padding")
            }
            guard let value = symbolValue(scalar) else {
                Crypto.wipe(&out)
                throw CoreError.invalidBase32("character at position \(position) is not base32")
            }
            symbols += 1
            buffer = (buffer << 5) | value
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        buffer = 0
        switch symbols % 8 {
        case 0, 2, 4, 5, 7: break
        default:
            Crypto.wipe(&out)
            throw CoreError.invalidBase32("length \(symbols) is not a whole number of bytes")
        }
        if padding > 0, (symbols + padding) % 8 != 0 || padding >= 8 {
            Crypto.wipe(&out)
            throw CoreError.invalidBase32("'=' padding does not complete an 8-character block")
        }
        return out
    }

    /// "ABCD EFGH IJKL ..." for typing by hand.
    public static func grouped(_ encoded: String, size: Int = 4) -> String {
        guard size > 0 else { return encoded }
        var out = ""
        out.reserveCapacity(encoded.count + encoded.count / size)
        for (i, character) in encoded.enumerated() {
            if i > 0, i % size == 0 { out.append(" ") }
            out.append(character)
        }
        return out
    }

    private static func symbolValue(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar.value {
        case 0x41...0x5A: return scalar.value - 0x41          // A-Z
        case 0x61...0x7A: return scalar.value - 0x61          // a-z
        case 0x32...0x37: return scalar.value - 0x32 + 26     // 2-7
        default: return nil
        }
    }
}
