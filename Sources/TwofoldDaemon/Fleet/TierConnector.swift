import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import TwofoldProtocol

/// How a relay reaches the tier: the configured servers in turn, starting with the last one that
/// answered (at start, one picked at random, so relays with the same `servers` line spread over
/// the tier instead of all using its first server), each bounded by `tier_connect_timeout_ms` for the TCP connect and the TLS handshake
/// together. A server is taken only once its certificate chains to `tls_server_ca`, names it as
/// `servers` spells it, and ALPN chose a relay protocol version this relay speaks.
final class TierConnector: Sendable {
    let servers: [TierAddress]
    private let context: NIOSSLContext
    private let timeout: TimeAmount
    private let preferred: Atomic<Int>
    private let logger: Logger
    private let metrics: DaemonMetrics?

    init(fleet: FleetConfiguration, environment: [String: String], logger: Logger, metrics: DaemonMetrics? = nil) throws {
        self.metrics = metrics
        guard !fleet.servers.isEmpty else { throw ConfigurationError("role = relay needs servers") }
        self.servers = fleet.servers
        self.preferred = Atomic(Int.random(in: 0..<fleet.servers.count))
        self.context = try TierTLS.clientContext(fleet, environment: environment)
        self.timeout = .milliseconds(Int64(fleet.tierConnectTimeoutMillis))
        self.logger = logger
    }

    /// Each server, reached just now (connect and handshake) or why not: for `doctor`.
    func probe(on loop: any EventLoop) -> EventLoopFuture<[TierServerState]> {
        let side = NIOLoopBound({ TierSideHandler(onMessage: { _ in }, onClose: { _ in }) }, eventLoop: loop)
        let attempts = servers.map { server in
            connect(to: server, on: loop, relay: side).map { channel -> TierServerState in
                channel.close(promise: nil)
                return TierServerState(address: server.description, error: nil)
            }.recover { TierServerState(address: server.description, error: String(describing: $0)) }
        }
        return EventLoopFuture.whenAllSucceed(attempts, on: loop)
    }

    /// A tier connection on `loop` (the local connection's: no hop between the two) whose end is a
    /// new handler from `makeSide` (one per attempt), or the last server's error.
    func connect(on loop: any EventLoop, makeSide: @escaping () -> TierSideHandler) -> EventLoopFuture<Channel> {
        let start = preferred.load(ordering: .relaxed)
        return attempt(start, left: servers.count, on: loop, relay: NIOLoopBound(makeSide, eventLoop: loop), lastError: nil).map { channel in
            if self.preferred.load(ordering: .relaxed) != start { self.metrics?.tierFailover() }
            return channel
        }
    }

    private func attempt(_ index: Int, left: Int, on loop: any EventLoop, relay: NIOLoopBound<() -> TierSideHandler>,
                         lastError: (any Error)?) -> EventLoopFuture<Channel> {
        guard left > 0 else { return loop.makeFailedFuture(lastError ?? ChannelError.connectTimeout(timeout)) }
        let server = servers[index % servers.count]
        return connect(to: server, on: loop, relay: relay).map { channel in
            self.preferred.store(index % self.servers.count, ordering: .relaxed)
            self.metrics?.tierConnection(server: server.description, outcome: "connected")
            return channel
        }.flatMapError { error in
            self.metrics?.tierConnection(server: server.description, outcome: "failed")
            self.logger.warning("tier server unreachable", metadata: ["server": "\(server)", "error": "\(error)"])
            return self.attempt(index + 1, left: left - 1, on: loop, relay: relay, lastError: error)
        }
    }

    private func connect(to server: TierAddress, on loop: any EventLoop, relay: NIOLoopBound<() -> TierSideHandler>) -> EventLoopFuture<Channel> {
        let handshake = loop.makePromise(of: Void.self)
        let context = self.context
        // SNI and the name check take a DNS name; an IP address is checked against the certificate's IP SANs.
        let hostname: String? = (try? SocketAddress(ipAddress: server.host, port: 0)) == nil ? server.host : nil
        let timer = loop.scheduleTask(in: timeout) { handshake.fail(ChannelError.connectTimeout(self.timeout)) }
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        try NIOSSLClientHandler(context: context, serverHostname: hostname),
                        TierHandshakeWaiter(promise: handshake),
                        ByteToMessageHandler(MessageDecoder(maxFrame: ProtocolLimits.maxResponseFrame)),
                        MessageToByteHandler(MessageEncoder()),
                        relay.value())
                }
            }
            .connect(host: server.host, port: server.port)
        connected.whenFailure { handshake.fail($0) }
        return connected.flatMap { channel in
            handshake.futureResult.map { channel }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }.always { _ in timer.cancel() }
    }
}

/// Completes a promise when the TLS handshake is done with a relay protocol version in common, or
/// fails it: a handshake error, no common version, or a close before either.
final class TierHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    struct NoCommonVersion: Error, CustomStringConvertible {
        var description: String { "the server speaks no relay protocol version this relay does (offered \(RelayProtocol.versions))" }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let alpn) = event {
            if RelayProtocol.version(alpn: alpn) != nil {
                promise.succeed()
                context.pipeline.syncOperations.removeHandler(self, promise: nil)
            } else {
                promise.fail(NoCommonVersion())
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}

/// The tier end of a relayed connection: hands what the server sends to the relay handler of the
/// local connection (both on one loop), and tells it when the server has gone.
final class TierSideHandler: ChannelInboundHandler {
    typealias InboundIn = Message

    private let onMessage: (Message) -> Void
    private let onClose: (String) -> Void
    private var reason: String?

    init(onMessage: @escaping (Message) -> Void, onClose: @escaping (String) -> Void) {
        self.onMessage = onMessage
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onMessage(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reason = reason ?? String(describing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(reason ?? "the server closed the connection")
        context.fireChannelInactive()
    }
}
