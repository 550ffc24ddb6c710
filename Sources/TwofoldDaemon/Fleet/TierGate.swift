import Logging
import NIOCore
import NIOSSL
import NIOTLS
import TwofoldProtocol

/// The first handler after TLS on a server's tier connection: once the handshake is done it knows
/// the host by its certificate (the host registry, never anything the host says), checks the
/// relay protocol version ALPN chose and the host's cap on connections, and then installs the
/// dialog pipeline. What the relay sent meanwhile is held and passed on in order. A refused host
/// gets a verdict that fails closed (DENIED), never a bare close.
final class TierGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private enum State {
        case handshaking
        case checking
        case passed
        case refused
    }

    private let services: ConnectionServices
    private let tier: TierServices
    private var state = State.handshaking
    private var held: [NIOAny] = []
    private var slotHeld = true
    private var timeout: Scheduled<Void>?
    /// A connection that has not been admitted within this is closed (a slow or silent TLS client).
    static let admissionTimeout = TimeAmount.seconds(10)

    init(services: ConnectionServices, tier: TierServices) {
        self.services = services
        self.tier = tier
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: Self.admissionTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releaseSlot()
    }

    func channelInactive(context: ChannelHandlerContext) {
        releaseSlot()
        context.fireChannelInactive()
    }

    private func releaseSlot() {
        timeout?.cancel()
        timeout = nil
        if slotHeld {
            slotHeld = false
            tier.handshakes.end()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .handshaking, .checking:
            // Bounded by the TLS record size times what a relay sends before an answer (RELAY + the first message).
            guard held.count < 64 else { return refuse(context, "the relay sent too much before it was admitted", userText: nil) }
            held.append(data)
        case .passed:
            context.fireChannelRead(data)
        case .refused:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted(let alpn) = event, case .handshaking = state else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        state = .checking
        guard RelayProtocol.version(alpn: alpn) != nil else {
            return refuse(context, "no relay protocol version in common (the relay offered none this server speaks)", userText: nil)
        }
        let fingerprint: String
        do {
            guard let certificate = try context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate else {
                return refuse(context, "no client certificate", userText: nil)
            }
            fingerprint = try TierTLS.fingerprint(certificate)
        } catch {
            return refuse(context, "unreadable client certificate", userText: nil)
        }
        // A host the registry's copy knows is decided here, without leaving the loop.
        if let known = tier.registry.cachedHost(fingerprint: fingerprint) { return decided(context, fingerprint: fingerprint, known) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let registry = tier.registry
        let loop = context.eventLoop
        Task {
            let found = await registry.host(fingerprint: fingerprint)
            loop.execute {
                let (gate, context) = bound.value
                gate.decided(context, fingerprint: fingerprint, found)
            }
        }
    }

    private func decided(_ context: ChannelHandlerContext, fingerprint: String, _ found: Result<String, HostRegistry.Refusal>) {
        guard case .checking = state else { return }
        switch found {
        case .failure(.unavailable(let why)):
            // Like a database outage at a login: UNAVAILABLE first, and the module's failmode decides.
            refuse(context, "the host registry cannot be read: \(why)", userText: nil, fingerprint: fingerprint, verdict: .unavailable)
        case .failure(let refusal):
            refuse(context, refusal.description, userText: nil, fingerprint: fingerprint)
        case .success(let host) where !tier.connections.admit(context.channel, host: host, fingerprint: fingerprint):
            refuse(context, "host \(host) is at its cap of connections", userText: "Too many logins are in progress on this host. Try again later.",
                   fingerprint: fingerprint)
        case .success(let host):
            do {
                try pass(context, host: host, fingerprint: fingerprint)
            } catch {
                context.close(promise: nil)
            }
        }
    }

    private func pass(_ context: ChannelHandlerContext, host: String, fingerprint: String) throws {
        state = .passed
        releaseSlot()
        let sync = context.pipeline.syncOperations
        let timeouts = tier.live.current
        try sync.addHandlers([
            ConnectionTimeoutHandler(idle: .seconds(Int64(timeouts.idleTimeoutSeconds)), total: .seconds(Int64(timeouts.connectionTimeoutSeconds))),
            ByteToMessageHandler(MessageDecoder()),
            MessageToByteHandler(MessageEncoder()),
            RelayEntryHandler(services: services, host: host, fingerprint: fingerprint),
        ], position: .after(self))
        for data in held { context.fireChannelRead(data) }
        held = []
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: String, userText: String?, fingerprint: String? = nil,
                        verdict: VerdictCode = .denied) {
        state = .refused
        held = []
        releaseSlot()
        services.logger.warning("tier connection refused", metadata: [
            "reason": "\(reason)", "fingerprint": "\(fingerprint ?? "-")", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "-")",
        ])
        let handler = RefusedConnectionHandler(reason: reason, userText: userText ?? "This host may not reach the verification servers. Ask your administrator.",
                                               verdict: verdict) {}
        _ = try? context.pipeline.syncOperations.addHandler(handler, position: .after(self))
    }
}

/// After the gate: the relay's first message is RELAY (who asks, on that host); then the dialog or
/// the control requests go to an ordinary `ConnectionHandler` for a relayed peer.
final class RelayEntryHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    typealias OutboundOut = Message

    private let services: ConnectionServices
    private let host: String
    private let fingerprint: String
    private var entered = false

    init(services: ConnectionServices, host: String, fingerprint: String) {
        self.services = services
        self.host = host
        self.fingerprint = fingerprint
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !entered else { return context.fireChannelRead(data) }
        guard case .relay(let json) = unwrapInboundIn(data) else {
            return fail(context, "a tier connection must start with RELAY")
        }
        guard let relayed = try? ControlCodec.decodeJSON(RelayContext.self, from: json), Self.plausible(relayed) else {
            return fail(context, "RELAY does not hold a valid relay context")
        }
        entered = true
        let peer = RelayedPeer(host: host, fingerprint: fingerprint, context: relayed).credentials
        do {
            try context.pipeline.syncOperations.addHandler(ConnectionHandler(services: services, peer: peer), position: .after(self))
        } catch {
            context.close(promise: nil)
        }
    }

    /// Names as a host's NSS could spell them, and not more groups than a system has.
    private static func plausible(_ relayed: RelayContext) -> Bool {
        let names = (relayed.caller.map { [$0] } ?? []) + (relayed.userGroups ?? [])
        return (relayed.userGroups?.count ?? 0) <= 4_096
            && names.allSatisfy { LoginDialogRunner.isPlausibleName($0) && $0.utf8.count <= 256 }
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        services.logger.warning("protocol error", metadata: ["host": "\(host)", "error": "\(reason)"])
        context.writeAndFlush(wrapOutboundOut(.protocolError(reason)), promise: nil)
        context.close(promise: nil)
    }
}

/// What a server's tier listener adds to the connection services.
struct TierServices: Sendable {
    let registry: HostRegistry
    let connections: HostConnections
    let handshakes = HandshakeSlots()
    let live: LiveConfiguration
}
