/// Text in the protocol is UTF-8 without NUL bytes.
enum TextValidation {
    private static let highBits: UInt64 = 0x8080_8080_8080_8080
    private static let lowBits: UInt64 = 0x0101_0101_0101_0101

    /// Whether `bytes[start..<end]` is well-formed UTF-8 (no overlong forms, no surrogates, nothing
    /// above U+10FFFF) containing no NUL byte.
    static func isValidText(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Bool {
        precondition(start >= 0 && start <= end && end <= bytes.count)
        guard start < end, let base = bytes.baseAddress else { return true }
        var i = start
        while i < end {
            // ASCII fast path, eight bytes at a time: no high bit and no zero byte.
            if end - i >= 8 {
                let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if word & highBits == 0 && (word &- lowBits) & ~word & highBits == 0 {
                    i += 8
                    continue
                }
            }
            let b0 = base.load(fromByteOffset: i, as: UInt8.self)
            if b0 < 0x80 {
                if b0 == 0 { return false }
                i += 1
                continue
            }
            @inline(__always) func byte(_ offset: Int) -> UInt8 { base.load(fromByteOffset: i + offset, as: UInt8.self) }
            @inline(__always) func isContinuation(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
            if b0 < 0xC2 {
                return false  // a stray continuation byte, or an overlong two-byte form
            } else if b0 < 0xE0 {
                guard end - i >= 2, isContinuation(byte(1)) else { return false }
                i += 2
            } else if b0 < 0xF0 {
                guard end - i >= 3 else { return false }
                let b1 = byte(1)
                let low: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80  // overlong
                let high: UInt8 = b0 == 0xED ? 0x9F : 0xBF  // surrogates
                guard b1 >= low, b1 <= high, isContinuation(byte(2)) else { return false }
                i += 3
            } else if b0 < 0xF5 {
                guard end - i >= 4 else { return false }
                let b1 = byte(1)
                let low: UInt8 = b0 == 0xF0 ? 0x90 : 0x80  // overlong
                let high: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF  // above U+10FFFF
                guard b1 >= low, b1 <= high, isContinuation(byte(2)), isContinuation(byte(3)) else { return false }
                i += 4
            } else {
                return false
            }
        }
        return true
    }
}
