import Testing
@testable import TwofoldProtocol

@Suite("FrameDecoder streaming")
struct StreamingTests {
    /// Every sample message, then a RESPONSE large enough to need the length escape.
    static let stream: (bytes: [UInt8], messages: [Message]) = {
        let messages = sampleMessages + [.response(largeJSON(100_000)), .info("after the large one")]
        var bytes: [UInt8] = []
        for message in messages { try! FrameCodec.encode(message, into: &bytes) }
        return (bytes, messages)
    }()

    @Test("fed one byte at a time")
    func byteByByte() throws {
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        var decoded: [Message] = []
        for byte in Self.stream.bytes {
            decoder.append(CollectionOfOne(byte))
            while let message = try decoder.next() { decoded.append(message) }
        }
        #expect(decoded == Self.stream.messages)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("fed in random chunk sizes", arguments: [1, 2, 3, 42, 0xDEAD_BEEF] as [UInt64])
    func randomChunks(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let bytes = Self.stream.bytes
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        var decoded: [Message] = []
        var offset = 0
        while offset < bytes.count {
            // Mostly small chunks, sometimes large ones.
            let limit = Bool.random(using: &rng) ? 16 : 70_000
            let size = min(Int.random(in: 1...limit, using: &rng), bytes.count - offset)
            bytes.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[offset ..< offset + size])) }
            offset += size
            while let message = try decoder.next() { decoded.append(message) }
        }
        #expect(decoded == Self.stream.messages)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("all at once, and nil while a frame is incomplete")
    func partial() throws {
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        #expect(try decoder.next() == nil)
        decoder.append(Self.stream.bytes)
        var decoded: [Message] = []
        while let message = try decoder.next() { decoded.append(message) }
        #expect(decoded == Self.stream.messages)

        let one = try FrameCodec.encode(.promptEchoOff("Code: "))
        decoder.append(one.dropLast())
        #expect(try decoder.next() == nil)
        #expect(decoder.bufferedByteCount == one.count - 1)
        decoder.append(one.suffix(1))
        #expect(try decoder.next() == .promptEchoOff("Code: "))
        #expect(try decoder.next() == nil)
    }

    @Test("a request-sized decoder rejects a large RESPONSE by its announced length")
    func requestDecoderRejectsLargeResponse() throws {
        let bytes = try FrameCodec.encode(.response(largeJSON(100_000)))
        var decoder = FrameDecoder()
        decoder.append(bytes.prefix(4))
        #expect(throws: ProtocolError.frameTooLarge(announced: bytes.count - 4, max: 65_536)) { try decoder.next() }
    }
}

/// A JSON string document of exactly `size` bytes.
func largeJSON(_ size: Int) -> [UInt8] {
    precondition(size >= 2)
    return [0x22] + [UInt8](repeating: 0x61, count: size - 2) + [0x22]
}

@Suite("Large RESPONSE escape")
struct LargeResponseTests {
    @Test("JSON length field: explicit below 65,535, the 0xFFFF escape from 65,535",
          arguments: [2, 65_000, 65_534, 65_535, 65_536, 100_000, ProtocolLimits.maxResponseJSON])
    func escape(_ size: Int) throws {
        let json = largeJSON(size)
        let bytes = try FrameCodec.encode(.response(json))
        #expect(bytes.count == 4 + 2 + 3 + size)
        #expect(Array(bytes[0..<4]) == be32(5 + size))
        #expect(bytes[6] == 0x30)
        let length = Int(bytes[7]) << 8 | Int(bytes[8])
        #expect(length == (size >= 0xFFFF ? 0xFFFF : size))

        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        decoder.append(bytes)
        #expect(try decoder.next() == .response(json))
    }

    @Test("hand-made escaped RESPONSE decodes: the value runs to the end of the frame")
    func handMadeEscape() throws {
        #expect(try decodeBody([1, 0x31, 0x30, 0xFF, 0xFF] + Array("{}".utf8)) == .response(Array("{}".utf8)))
        #expect(try decodeBody([1, 0x31, 0x30, 0xFF, 0xFF]) == .response([]))
        // An unknown field before the escaped JSON is skipped.
        #expect(try decodeBody([1, 0x31, 0x42, 0x00, 0x01, 0x00, 0x30, 0xFF, 0xFF] + Array("[1]".utf8)) == .response(Array("[1]".utf8)))
        let big = largeJSON(200_000)
        #expect(try decodeBody([1, 0x31, 0x30, 0xFF, 0xFF] + big) == .response(big))
    }

    @Test("an escaped value longer than 4 MiB − 16 is too long, a frame over 4 MiB too large")
    func escapeLimits() throws {
        // Frame of exactly 4 MiB: the escaped value is 4 MiB − 5 bytes, over the bound.
        let value = [UInt8](repeating: 0x20, count: ProtocolLimits.maxResponseFrame - 5)
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x30, length: value.count)) {
            try decodeBody([1, 0x31, 0x30, 0xFF, 0xFF] + value)
        }
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x30, length: ProtocolLimits.maxResponseJSON + 1)) {
            try FrameCodec.encode(.response(largeJSON(ProtocolLimits.maxResponseJSON + 1)))
        }
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        decoder.append(be32(ProtocolLimits.maxResponseFrame + 1))
        #expect(throws: ProtocolError.frameTooLarge(announced: ProtocolLimits.maxResponseFrame + 1, max: ProtocolLimits.maxResponseFrame)) {
            try decoder.next()
        }
    }

    @Test("REQUEST JSON stops at 65,000 bytes and never uses the escape")
    func requestBound() throws {
        let bytes = try FrameCodec.encode(.request(largeJSON(65_000)))
        #expect(Int(bytes[7]) << 8 | Int(bytes[8]) == 65_000)
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x30, length: 65_001)) {
            try FrameCodec.encode(.request(largeJSON(65_001)))
        }
    }
}
