import NIOCore
import TwofoldProtocol

/// Splits the inbound byte stream into protocol messages. The announced length is checked against
/// the bound before any of the frame is buffered; a violation is a `ProtocolError`.
final class MessageDecoder: ByteToMessageDecoder {
    typealias InboundOut = Message
    private let maxFrame: Int

    init(maxFrame: Int = ProtocolLimits.maxRequestFrame) {
        self.maxFrame = maxFrame
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes >= FrameCodec.lengthPrefixSize else { return .needMoreData }
        let length = try buffer.withUnsafeReadableBytes { try FrameCodec.frameLength(prefix: $0, maxFrame: maxFrame) }
        guard buffer.readableBytes >= FrameCodec.lengthPrefixSize + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: FrameCodec.lengthPrefixSize)
        let message = try buffer.readWithUnsafeReadableBytes { raw -> (Int, Message) in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<length])
            return (length, try FrameCodec.decodeBody(body))
        }
        context.fireChannelRead(Self.wrapInboundOut(message))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A half-sent frame at EOF is simply dropped: the dialog ends as abandoned.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

/// Encodes outbound messages into frames.
final class MessageEncoder: MessageToByteEncoder {
    typealias OutboundIn = Message

    func encode(data: Message, out: inout ByteBuffer) throws {
        var bytes: [UInt8] = []
        try FrameCodec.encode(data, into: &bytes)
        out.writeBytes(bytes)
    }
}

/// Closes a connection that has been silent for `idle` (a person has that long to type a code) or
/// open for `total`, with one timer per connection. First in the pipeline, it sees every read.
final class ConnectionTimeoutHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private let idle: TimeAmount
    private let total: TimeAmount
    private var opened = NIODeadline.now()
    private var lastRead = NIODeadline.now()
    private var timer: Scheduled<Void>?

    init(idle: TimeAmount, total: TimeAmount) {
        self.idle = idle
        self.total = total
    }

    func handlerAdded(context: ChannelHandlerContext) {
        opened = .now()
        lastRead = opened
        schedule(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let due = min(opened + total, lastRead + idle)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            if NIODeadline.now() >= min(opened + total, lastRead + idle) {
                timer = nil
                context.close(promise: nil)
            } else {
                schedule(context)   // read meanwhile: wait for the new deadline
            }
        }
    }
}

/// Closes a connection as soon as it is active (one over the connection cap).
final class CloseOnActiveHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }
}
