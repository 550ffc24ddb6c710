import Logging
import NIOCore
import NIOPosix
import TwofoldProtocol

/// One local connection on a relay, forwarded to the tier. The relay authorizes its local peer as
/// a single host's daemon would (SO_PEERCRED: root, or the user itself), says who asks (RELAY),
/// and then passes messages both ways, checked by the same decoders as everywhere. It holds no
/// secret and decides nothing about codes: every verdict is the tier's, except that a dialog the
/// tier cannot finish fails closed here: VERDICT UNAVAILABLE before anything reached the module
/// (its failmode decides), and after that too, which the module maps to PAM_AUTH_ERR.
final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    typealias OutboundOut = Message

    enum State {
        case awaitingFirst
        /// NSS lookups (maybe LDAP or sssd) on the thread pool, then reaching the tier; what the
        /// client sends meanwhile waits (a control client may send its requests ahead; in a dialog
        /// the tier refuses an answer nobody asked for).
        case connecting(held: [Message])
        case relaying(Channel)
        /// No server reachable: the emergency code prompt was sent (`RelayHandler+BreakGlass`).
        case emergency(AuthStart)
        /// Checking an emergency code, or serving the host's own emergency-code requests.
        case local
        case finished
    }

    let peer: PeerCredentials
    let services: RelayServices
    var logger: Logger { services.logger }
    var state = State.awaitingFirst
    var context: ChannelHandlerContext?
    /// A login dialog (else control requests).
    private var dialog = false
    /// The user of sshd's `authorizedKeys` question on this connection: answered from the cache
    /// when the tier cannot answer (`RelayHandler+SSHKeys`).
    var keysFor: String?
    private var received = NIODeadline.now()
    /// What the relay's own hop may take of the module's wait.
    static let hopMarginMillis: Int64 = 250

    init(peer: PeerCredentials, services: RelayServices) {
        self.peer = peer
        self.services = services
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch state {
        case .awaitingFirst:
            first(message, context: context)
        case .connecting(var held):
            held.append(message)
            state = .connecting(held: held)
        case .relaying(let tier):
            tier.writeAndFlush(message, promise: nil)
        case .emergency(let start):
            emergencyAnswer(message, start: start)
        case .local:
            localRequest(message)
        case .finished:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .relaying(let tier) = state { tier.close(promise: nil) }
        if dialog, !isFinished { services.metrics.relayDialog(outcome: .abandoned) }
        state = .finished
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let cut = event as? DialogCutOff else { return context.fireUserInboundEventTriggered(event) }
        if dialog { finish(.verdict(cut.verdict, reason: cut.reason)) } else { close() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ProtocolError {
            finish(.protocolError(error.description))
        } else {
            close()
        }
    }

    // MARK: - The first message

    private func first(_ message: Message, context: ChannelHandlerContext) {
        received = .now()
        switch message {
        case .authStart(let start):
            dialog = true
            guard LoginDialogRunner.isPlausibleName(start.user), LoginDialogRunner.isPlausibleName(start.service) else {
                return finish(.verdict(.badRequest, reason: "user and service must be non-empty names without control characters"))
            }
            prepare { [peer] in try Self.loginContext(start, peer: peer) }
        case .request(let json):
            let request = try? ControlCodec.decodeJSON(ControlRequest.self, from: json)
            if let request, request.isAnsweredByRelay {
                state = .local
                return localRequest(message)
            }
            if case .authorizedKeys(let user)? = request {
                keysFor = user
                return prepare { [peer, services] in try Self.keysContext(peer: peer, services: services, message: message) }
            }
            prepare { [peer] in (RelayContext(uid: peer.uid, gid: peer.gid, pid: peer.pid, caller: Accounts.name(of: peer.uid)), message) }
        default:
            finish(.protocolError("a connection must start with AUTH_START or REQUEST"))
        }
    }

    /// The relay's checks and lookups for a login: the user as NSS spells it, a non-root peer only
    /// for itself, the user's groups; the module's password never leaves this host.
    private static func loginContext(_ start: AuthStart, peer: PeerCredentials) throws -> (RelayContext, Message) {
        var start = start
        start.user = Accounts.canonicalName(of: start.user) ?? start.user
        start.password = nil
        if !peer.isRoot, Accounts.uid(of: start.user) != peer.uid {
            throw Refused(reason: "peer uid \(peer.uid) may not ask about this user")
        }
        let context = RelayContext(uid: peer.uid, gid: peer.gid, pid: peer.pid, userGroups: Accounts.groups(of: start.user).sorted())
        return (context, .authStart(start))
    }

    struct Refused: Error {
        var reason: String
    }

    private func prepare(_ work: @escaping @Sendable () throws -> (RelayContext, Message)) {
        guard let loop = context?.eventLoop else { return }
        state = .connecting(held: [])
        let bound = NIOLoopBound(self, eventLoop: loop)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop, work).whenComplete { result in
            let handler = bound.value
            switch result {
            case .success(let (relayed, first)):
                handler.connect(relayed, first)
            case .failure(let refused as Refused):
                // Debug only: a local user could write a line per attempt (the relay has no refusal
                // auditor); the denials are counted in twofold_relay_dialogs_total.
                handler.logger.debug("relay refused a login", metadata: ["peer": "\(handler.peer)", "reason": "\(refused.reason)"])
                handler.finish(.verdict(.denied, reason: "refused: \(refused.reason)"))
            case .failure(let error):
                handler.logger.error("relay cannot look up the account", metadata: ["error": "\(error)"])
                handler.unreachable("account lookup failed")
            }
        }
    }

    // MARK: - The tier

    private func connect(_ relayed: RelayContext, _ first: Message) {
        guard case .connecting = state, let loop = context?.eventLoop else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let connecting = services.connector.connect(on: loop) {
            TierSideHandler(onMessage: { bound.value.fromTier($0) }, onClose: { bound.value.tierClosed($0) })
        }
        connecting.whenComplete { result in
            let handler = bound.value
            guard case .connecting(let held) = handler.state else {
                if case .success(let tier) = result { tier.close(promise: nil) }
                return
            }
            switch result {
            case .success(let tier):
                handler.state = .relaying(tier)
                handler.send(relayed, first, held, to: tier)
                handler.services.tierReached()
            case .failure(let error):
                handler.logger.error("no server of the tier is reachable", metadata: ["error": "\(error)"])
                if let user = handler.keysFor {
                    handler.answerFromCache(user, because: "no server of the tier is reachable")
                } else if case .authStart(let start) = first, handler.services.breakGlass?.hasCodes(start.user) == true {
                    handler.offerEmergencyCode(start)
                } else {
                    handler.unreachable("no server of the tier is reachable")
                }
            }
        }
    }

    private func send(_ relayed: RelayContext, _ first: Message, _ held: [Message], to tier: Channel) {
        guard let json = try? ControlCodec.encodeRequest(relayed), case .request(let bytes) = json else {
            return unreachable("cannot encode the relay context")
        }
        tier.write(Message.relay(bytes), promise: nil)
        tier.write(withDeadline(first), promise: nil)
        for message in held { tier.write(message, promise: nil) }
        tier.flush()
    }

    /// The module's wait, less what the relay's lookups and connect took and a margin for the way
    /// back, so the server answers while the module still waits.
    private func withDeadline(_ message: Message) -> Message {
        guard case .authStart(var start) = message else { return message }
        let wait = Int64(start.deadlineMillis ?? UInt32(LoginContext.defaultClientWaitMillis))
        let spent = (NIODeadline.now() - received).nanoseconds / 1_000_000
        start.deadlineMillis = UInt32(max(wait - spent - Self.hopMarginMillis, 1_000))
        return .authStart(start)
    }

    private func fromTier(_ message: Message) {
        guard case .relaying = state, let context else { return }
        if let user = keysFor { return keysFromTier(message, user: user) }
        switch message {
        case .verdict, .protocolError:
            finish(message)
        default:
            context.writeAndFlush(wrapOutboundOut(message), promise: nil)
        }
    }

    private func tierClosed(_ reason: String) {
        guard case .relaying = state else { return }
        if let user = keysFor { return answerFromCache(user, because: "the tier ended the connection: \(reason)") }
        logger.warning("the tier ended a relayed connection", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        if dialog {
            finish(.verdict(.unavailable, reason: "the verification server went away: \(reason)"))
        } else {
            close()
        }
    }

    /// Nothing could be asked of the tier: a dialog gets UNAVAILABLE (the module's failmode
    /// decides); a control client an error response.
    private func unreachable(_ reason: String) {
        if dialog {
            finish(.verdict(.unavailable, reason: reason))
        } else if let response = try? ControlCodec.encodeResponse(ControlResponse.error(code: .unavailable, message: "\(reason); try again later")) {
            finish(response)
        } else {
            close()
        }
    }

    /// Sends the last message of the connection, then closes it (and the tier's).
    func finish(_ message: Message) {
        if case .relaying(let tier) = state { tier.close(promise: nil) }
        if case .finished = state { return }
        state = .finished
        if dialog, let outcome = VerifyOutcome(ending: message) { services.metrics.relayDialog(outcome: outcome) }
        guard let context else { return }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(message)).whenComplete { _ in channel.close(promise: nil) }
    }

    private var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    func close() {
        if case .relaying(let tier) = state { tier.close(promise: nil) }
        state = .finished
        context?.close(promise: nil)
    }
}
