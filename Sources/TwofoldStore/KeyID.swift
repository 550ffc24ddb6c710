import TwofoldCrypto

/// A master key's public name: the first 8 bytes of HMAC-SHA256(master, "twofold v1 key id"),
/// written as 16 hex digits. It says which key sealed a blob (format 2) and which keys a database
/// knows; it reveals nothing of the key. 64 bits keep two keys of one installation apart; they are
/// no defence against someone who crafts a colliding key, which is also why a blob's key id only
/// picks the key and authentication still decides.
public struct KeyID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let length = 8
    public let bytes: [UInt8]
    /// The 16 hex digits, made once: every format 2 blob's associated data names them.
    public let hex: String

    /// Nil unless `bytes` has exactly `length` bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.length else { return nil }
        self.init(checked: Array(bytes))
    }

    private init(checked bytes: [UInt8]) {
        self.bytes = bytes
        hex = Crypto.hex(bytes)
    }

    /// Parses 16 hex digits (either case); nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * Self.length else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = Self.nibble(digits[i]), let low = Self.nibble(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.init(checked: bytes)
    }

    /// The id of a 32-byte master key.
    init(master: SecretBytes) {
        self.init(checked: Array(Crypto.hmac(.sha256, key: master, data: Array("twofold v1 key id".utf8)).prefix(Self.length)))
    }


    public var description: String { hex }

    public static func < (a: KeyID, b: KeyID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
