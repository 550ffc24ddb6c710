import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A server's TCP listener for relays (`listen`): TLS first, then `TierGate`, which knows the host
/// by its certificate. Handshakes in progress are capped (the port is reachable by anyone on the
/// network, and a handshake costs the server a signature) and bounded in time.
struct TierListener: Sendable {
    let address: TierAddress
    let context: NIOSSLContext
    let services: TierServices
    /// Handshakes in progress at most; further connections are closed at once.
    static let maxHandshakes = 256

    init(fleet: FleetConfiguration, services: TierServices, environment: [String: String]) throws {
        guard let address = fleet.listen else { throw ConfigurationError("role = server needs listen") }
        self.address = address
        self.context = try TierTLS.serverContext(fleet, environment: environment)
        self.services = services
    }

    func bind(services connection: ConnectionServices, loop: any EventLoop, track: @escaping @Sendable (Channel) -> Void) async throws -> Channel {
        let (context, tier) = (self.context, self.services)
        let bootstrap = ServerBootstrap(group: loop, childGroup: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                track(channel)
                guard tier.handshakes.begin() else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: context), TierGate(services: connection, tier: tier))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
            Logger(label: "twofoldd").notice("listening for relays", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "\(address)")"])
            return channel
        } catch {
            throw ConfigurationError("cannot listen on \(address) for relays: \(error)")
        }
    }

    /// Reads the host registry again every `registry_refresh_seconds` and ends the connections of
    /// certificates revoked meanwhile (through any server).
    func sweepRegistry(on loop: any EventLoop, logger: Logger) -> RepeatedTask {
        let tier = services
        let every = TimeAmount.seconds(Int64(tier.live.current.fleet.registryRefreshSeconds))
        return loop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            Task { await tier.refreshRegistry(logger: logger) }
        }
    }
}

extension TierServices {
    /// Reads the registry again and ends what it now refuses.
    func refreshRegistry(logger: Logger) async {
        do {
            let revoked = try await registry.refresh()
            for host in connections.end(fingerprints: revoked) {
                logger.notice("connections of a revoked host ended", metadata: ["host": "\(host)"])
            }
        } catch {
            logger.warning("cannot read the host registry", metadata: ["error": "\(error)"])
        }
    }
}

/// Handshakes in progress: a cap, given back when the gate decides or the connection closes.
final class HandshakeSlots: Sendable {
    private let count = Atomic<Int>(0)

    func begin() -> Bool {
        if count.wrappingAdd(1, ordering: .relaxed).newValue <= TierListener.maxHandshakes { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func end() { count.wrappingSubtract(1, ordering: .relaxed) }
}
