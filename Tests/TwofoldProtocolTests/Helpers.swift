@testable import TwofoldProtocol

/// One raw field, written by hand (the tests never trust the encoder to build rejections).
struct RawField: Sendable {
    var tag: UInt8
    var value: [UInt8]
    /// Overrides the u16 length (to lie about it).
    var length: Int?

    init(_ tag: UInt8, _ value: [UInt8], length: Int? = nil) {
        self.tag = tag
        self.value = value
        self.length = length
    }

    init(_ tag: UInt8, _ text: String) {
        self.init(tag, Array(text.utf8))
    }

    var bytes: [UInt8] {
        let length = self.length ?? value.count
        return [tag, UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)] + value
    }
}

/// A frame body (no length prefix).
func body(type: UInt8, version: UInt8 = 1, _ fields: [RawField] = [], trailing: [UInt8] = []) -> [UInt8] {
    [version, type] + fields.flatMap(\.bytes) + trailing
}

/// A whole frame: u32 length + body.
func frame(_ body: [UInt8]) -> [UInt8] {
    be32(body.count) + body
}

func be32(_ value: Int) -> [UInt8] {
    [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
     UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
}

func decodeBody(_ bytes: [UInt8]) throws -> Message {
    try bytes.withUnsafeBytes { try FrameCodec.decodeBody($0) }
}

/// Deterministic PRNG so random chunkings are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
