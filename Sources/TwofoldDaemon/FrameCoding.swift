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

/// Closes the connection when it has been silent for too long (a person has `idle_timeout` to type).
final class IdleCloseHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
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
