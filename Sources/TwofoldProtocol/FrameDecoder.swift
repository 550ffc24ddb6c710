/// Incremental decoder for a byte stream: feed any chunks, take whole messages.
///
/// The announced length of each frame is checked against `maxFrame` as soon as its 4-byte prefix has
/// arrived, before any of the body is waited for. After a protocol error the decoder stays failed:
/// every later `next()` throws the same error (the connection must be closed).
public struct FrameDecoder: Sendable {
    public let maxFrame: Int
    private var buffer: [UInt8] = []
    /// Start of the unread bytes in `buffer`.
    private var readIndex = 0
    private var failure: ProtocolError?

    /// A capacity kept across frames; a larger buffer is released once drained.
    private static let retainedCapacity = 128 << 10

    public init(maxFrame: Int = ProtocolLimits.maxRequestFrame) {
        self.maxFrame = maxFrame
    }

    /// Bytes received but not yet returned as messages.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        compactIfWorthwhile()
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, nil if more bytes are needed; throws `ProtocolError` on a protocol error.
    public mutating func next() throws -> Message? {
        if let failure { throw failure }
        let available = buffer.count - readIndex
        guard available >= FrameCodec.lengthPrefixSize else { return nil }
        let start = readIndex
        let maxFrame = self.maxFrame
        do {
            let decoded: (length: Int, message: Message)? = try buffer.withUnsafeBytes { raw in
                let length = try FrameCodec.frameLength(
                    prefix: UnsafeRawBufferPointer(rebasing: raw[start ..< start + FrameCodec.lengthPrefixSize]),
                    maxFrame: maxFrame)
                guard available >= FrameCodec.lengthPrefixSize + length else { return nil }
                let bodyStart = start + FrameCodec.lengthPrefixSize
                let body = UnsafeRawBufferPointer(rebasing: raw[bodyStart ..< bodyStart + length])
                return (length, try FrameCodec.decodeBody(body))
            }
            guard let decoded else { return nil }
            readIndex = start + FrameCodec.lengthPrefixSize + decoded.length
            if readIndex == buffer.count {
                buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
                readIndex = 0
            }
            return decoded.message
        } catch let error as ProtocolError {
            failure = error
            throw error
        }
    }

    private mutating func compactIfWorthwhile() {
        guard readIndex > 0, readIndex >= 4096 || readIndex * 2 >= buffer.count else { return }
        buffer.removeSubrange(0 ..< readIndex)
        readIndex = 0
    }
}
