/// The part of CBOR (RFC 8949) that a COSE public key in FIDO2 authenticator data uses: integers,
/// byte and text strings, arrays, maps, simple values. Definite lengths only (CTAP2's canonical
/// form), bounded depth and size: the input comes from a key, through a client.
public indirect enum CBOR: Equatable, Sendable {
    case unsigned(UInt64)
    /// -1 - n
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBOR])
    case map([(CBOR, CBOR)])
    case simple(UInt8)

    public static func == (a: CBOR, b: CBOR) -> Bool {
        switch (a, b) {
        case let (.unsigned(x), .unsigned(y)), let (.negative(x), .negative(y)): x == y
        case let (.bytes(x), .bytes(y)): x == y
        case let (.text(x), .text(y)): x == y
        case let (.array(x), .array(y)): x == y
        case let (.map(x), .map(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.simple(x), .simple(y)): x == y
        default: false
        }
    }

    /// The integer value of `.unsigned` and `.negative`, if it fits.
    public var int: Int64? {
        switch self {
        case .unsigned(let n): n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n): n < UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: nil
        }
    }

    /// The value of integer key `key` in a map.
    public subscript(key: Int64) -> CBOR? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0.int == key }?.1
    }

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Decodes one item at `offset`, moving `offset` past it.
    public static func decode(_ bytes: [UInt8], offset: inout Int, depth: Int = 0) throws -> CBOR {
        guard depth < 8 else { throw Invalid(description: "CBOR nested too deeply") }
        guard offset < bytes.count else { throw Invalid(description: "CBOR item cut short") }
        let initial = bytes[offset]
        offset += 1
        let major = initial >> 5
        let argument = try Self.argument(initial & 0x1F, bytes, &offset)
        switch major {
        case 0: return .unsigned(argument)
        case 1: return .negative(argument)
        case 2, 3:
            guard argument <= UInt64(bytes.count - offset) else { throw Invalid(description: "CBOR string runs past the end") }
            let slice = Array(bytes[offset..<offset + Int(argument)])
            offset += Int(argument)
            if major == 2 { return .bytes(slice) }
            guard let text = String(validating: slice, as: UTF8.self) else { throw Invalid(description: "CBOR text is not UTF-8") }
            return .text(text)
        case 4, 5:
            // Each element takes at least one byte: a count beyond what is left is a lie.
            guard argument <= UInt64(bytes.count - offset) else { throw Invalid(description: "CBOR container runs past the end") }
            if major == 4 {
                return .array(try (0..<Int(argument)).map { _ in try decode(bytes, offset: &offset, depth: depth + 1) })
            }
            return .map(try (0..<Int(argument)).map { _ in
                (try decode(bytes, offset: &offset, depth: depth + 1), try decode(bytes, offset: &offset, depth: depth + 1))
            })
        case 7:
            guard argument < 256 else { throw Invalid(description: "CBOR floats are not expected here") }
            return .simple(UInt8(argument))
        default:
            throw Invalid(description: "CBOR tags are not expected here")
        }
    }

    private static func argument(_ info: UInt8, _ bytes: [UInt8], _ offset: inout Int) throws -> UInt64 {
        if info < 24 { return UInt64(info) }
        let width: Int
        switch info {
        case 24: width = 1
        case 25: width = 2
        case 26: width = 4
        case 27: width = 8
        default: throw Invalid(description: "CBOR indefinite lengths are not expected here")
        }
        guard bytes.count - offset >= width else { throw Invalid(description: "CBOR item cut short") }
        var value: UInt64 = 0
        for byte in bytes[offset..<offset + width] { value = value << 8 | UInt64(byte) }
        offset += width
        return value
    }
}
