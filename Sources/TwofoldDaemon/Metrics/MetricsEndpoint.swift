import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// `metrics_listen`: a minimal HTTP/1.1 server for a Prometheus scraper, run as a service beside
/// the socket server. One request per connection (`MetricsHTTPHandler`); what a client can make it
/// hold is bounded: a request head of at most 8 KiB, at most `maxConnections` connections at once
/// (more are closed at once), each closed after `connectionSeconds` whatever it does. A malformed
/// request gets 400 (NIO's error handler) and is closed. None of this touches the login path.
final class MetricsEndpoint: Service, Sendable {
    static let maxConnections = 16
    static let connectionSeconds: Int64 = 10
    static let headLimits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8 * 1024
        limits.maxHeaderListSize = 8 * 1024
        limits.maxHeaderFieldCount = 64
        return limits
    }()

    private let listener: any Channel
    private let logger: Logger

    private init(listener: any Channel, logger: Logger) {
        self.listener = listener
        self.logger = logger
    }

    /// Binds `address` now, so that an address in use stops the daemon at its start rather than
    /// later, and logs the address bound (the port taken when `address` says 0).
    /// The endpoint of `metrics_listen`, or nil when it is not set.
    static func bindIfSet(_ address: ListenAddress?, metrics: DaemonMetrics, logger: Logger) async throws -> MetricsEndpoint? {
        guard let address else { return nil }
        return try await bind(address, metrics: metrics, logger: logger)
    }

    static func bind(_ address: ListenAddress, metrics: DaemonMetrics, logger: Logger,
                     group: MultiThreadedEventLoopGroup = .singleton) async throws -> MetricsEndpoint {
        let slots = ConnectionSlots(maxConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard slots.take() else { return channel.close() }
                channel.closeFuture.whenComplete { _ in slots.give() }
                channel.eventLoop.scheduleTask(in: .seconds(connectionSeconds)) { channel.close(promise: nil) }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true,
                                                         withEncoderConfiguration: .init(), withDecoderLimitConfiguration: headLimits)
                    try sync.addHandler(MetricsHTTPHandler(metrics: metrics))
                }
            }
        let listener: any Channel
        do {
            listener = try await bootstrap.bind(to: try address.socketAddress).get()
        } catch {
            throw ConfigurationError("metrics_listen: cannot listen on \(address): \(error)")
        }
        let bound = listener.localAddress.flatMap { ListenAddress(host: $0.ipAddress ?? address.host, port: $0.port ?? address.port) } ?? address
        logger.notice("metrics endpoint listening", metadata: ["address": "\(bound)", "path": "/metrics"])
        return MetricsEndpoint(listener: listener, logger: logger)
    }

    func run() async throws {
        let listener = self.listener
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await listener.closeFuture.get()
            } onGracefulShutdown: {
                listener.close(promise: nil)
            }
        } onCancel: {
            listener.close(promise: nil)
        }
        logger.debug("metrics endpoint stopped")
    }
}

/// Connections the endpoint serves at once, at most `limit`.
private final class ConnectionSlots: Sendable {
    private let taken = Atomic<Int>(0)
    private let limit: Int

    init(_ limit: Int) {
        self.limit = limit
    }

    /// Takes a slot; false (and nothing taken) when all are taken.
    func take() -> Bool {
        guard taken.add(1, ordering: .relaxed).newValue <= limit else {
            taken.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func give() {
        taken.subtract(1, ordering: .relaxed)
    }
}
