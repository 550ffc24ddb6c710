/// Normalization of a typed one-time code, done before any crypto.
public enum CodeInput {
    /// The code's ASCII digit bytes if `input` (after trimming surrounding whitespace and removing inner
    /// spaces) is exactly `digits` ASCII digits; otherwise nil. No crypto happens for nil.
    public static func normalize(_ input: String, digits: Int) -> [UInt8]? {
        guard (1...10).contains(digits) else { return nil }
        var bytes = Array(input.utf8.prefix(256))
        guard bytes.count == input.utf8.count else { return nil }
        while let first = bytes.first, isTrimmable(first) { bytes.removeFirst() }
        while let last = bytes.last, isTrimmable(last) { bytes.removeLast() }
        var out: [UInt8] = []
        out.reserveCapacity(digits)
        for byte in bytes where byte != UInt8(ascii: " ") {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), out.count < digits else { return nil }
            out.append(byte)
        }
        return out.count == digits ? out : nil
    }

    private static func isTrimmable(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r")
    }
}
