import NIOCore
import NIOHTTP1

/// One connection of the metrics endpoint: the first request's head decides the answer (the
/// exposition text for GET /metrics, 404 or 405 otherwise), sent with `Connection: close`, and the
/// connection is closed once it is written. Nothing of a request is kept, its body is never read:
/// a client can make the endpoint hold no more than the decoder's bounded head.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What Prometheus asks for and gets: the text format, version 0.0.4.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let metrics: DaemonMetrics
    private var answered = false

    init(metrics: DaemonMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch (head.method, path) {
        case (.GET, "/metrics"):
            respond(context, .ok, body: metrics.exposition(), contentType: Self.contentType)
        case (_, "/metrics"):
            respond(context, .methodNotAllowed, body: "only GET\n", extraHeaders: [("Allow", "GET")])
        default:
            respond(context, .notFound, body: "not found: the metrics are at /metrics\n")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, body: String,
                         contentType: String = "text/plain; charset=utf-8", extraHeaders: [(String, String)] = []) {
        let bytes = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.readableBytes)), ("Connection", "close")])
        headers.add(contentsOf: extraHeaders)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
