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

/// Ends a connection that has been silent for `idle` (a person has that long to type a code) or
/// open for `total`, with one timer per connection. First in the pipeline, it sees every read. It
/// does not close a started dialog bare: it sends `DialogCutOff` down the pipeline, so the
/// connection handler can give the verdict, and closes itself only if that has not happened a
/// second later.
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
            let now = NIODeadline.now()
            if now >= min(opened + total, lastRead + idle) {
                timer = nil
                let reason = now >= opened + total ? "connection_timeout reached" : "idle_timeout reached"
                context.fireUserInboundEventTriggered(DialogCutOff(verdict: .failure, reason: reason))
                let channel = context.channel
                context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            } else {
                schedule(context)   // read meanwhile: wait for the new deadline
            }
        }
    }
}

/// Answers a connection refused by a limit: a VERDICT DENIED with the reason (never a bare close,
/// which a module with failmode=open would take for a daemon that is down), then drains what the
/// client sends until it closes, or for a second at most, so its AUTH_START never meets a closed
/// socket. A control client reads the same VERDICT as a refusal.
final class RefusedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let reason: String
    private let userText: String?
    private let verdict: VerdictCode
    private let onClose: @Sendable () -> Void

    /// `verdict` UNAVAILABLE goes without a text: as the first message it lets the module's failmode
    /// decide, which any message before it would prevent.
    static let tooManyConnections = "Too many connections to twofoldd from this account. Try again later."

    init(reason: String, userText: String? = RefusedConnectionHandler.tooManyConnections,
         verdict: VerdictCode = .denied, onClose: @escaping @Sendable () -> Void) {
        self.reason = reason
        self.userText = verdict == .unavailable ? nil : userText
        self.verdict = verdict
        self.onClose = onClose
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    /// Added to a channel that is already active (a tier connection refused after its handshake).
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    private var answered = false

    /// The refusal's frames: the text for the user (none before UNAVAILABLE), then the verdict.
    static func answer(reason: String, userText: String? = tooManyConnections, verdict: VerdictCode = .denied) -> [UInt8] {
        var bytes: [UInt8] = []
        if let userText { try? FrameCodec.encode(.errorMessage(userText), into: &bytes) }
        try? FrameCodec.encode(.verdict(verdict, reason: "refused: \(reason)"), into: &bytes)
        return bytes
    }

    private func answer(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let bytes = Self.answer(reason: reason, userText: userText, verdict: verdict)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the client sends is read and dropped.
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Answers a connection refused while the refused ones being drained are already at their cap (a
/// non-root flood; root's connections are never refused before the total is full): the same verdict
/// as `RefusedConnectionHandler`, written at once, then closed without the drain, so a flood holds
/// nothing past its cap. Still never a bare close: on a Unix socket the verdict stays readable after
/// the close (the module sends its AUTH_START on connect, before the daemon accepts, so it has
/// nothing left to write).
final class AnswerAndCloseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let bytes: [UInt8]

    init(reason: String) {
        bytes = RefusedConnectionHandler.answer(reason: reason)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: bytes))).whenComplete { _ in
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the client sends is read and dropped.
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension AdmissionControl {
    /// The handler of a connection refused for `refusal` (the socket's and a relay's): drained
    /// while the refused ones are under their cap, answered and closed at once past it.
    func refusalHandler(for refusal: Refusal) -> any ChannelHandler {
        guard beginRefusing() else { return AnswerAndCloseHandler(reason: refusal.description) }
        return RefusedConnectionHandler(reason: refusal.description) { [self] in endRefusing() }
    }
}
