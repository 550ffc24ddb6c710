#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TwofoldCore
import TwofoldProtocol

/// What every relayed connection of a relay shares.
struct RelayServices: Sendable {
    let connector: TierConnector
    /// This host's emergency codes (nil: the file could not be set up; none can be used).
    let breakGlass: BreakGlass?
    let clock: any WallClock
    let live: LiveConfiguration
    let metrics: DaemonMetrics
    let logger: Logger
    /// Called when a server answered: the emergency codes' events can go to its audit.
    let tierReached: @Sendable () -> Void
    /// The SSH key lines the tier last served, for an outage.
    let sshKeys: SSHKeyCache
    /// The uid of `authorized_keys_user`.
    let keysAccount = KeysAccount()
}

extension ControlRequest {
    /// The relay answers these itself, for this host's root: its emergency codes, and its setup
    /// (and a backup: that it keeps no store).
    var isAnsweredByRelay: Bool {
        switch self {
        case .breakGlassIssue, .breakGlassList, .breakGlassClear, .serverInfo, .metrics, .backupBegin, .backupRead, .backupEnd: true
        default: false
        }
    }
}

/// Emergency codes on a relay: a login whose user has codes on this host, while no server of the
/// tier answers, is asked for one (after the relay's own checks of the peer, as for any dialog); and
/// this host's root issues, lists and clears them through the relay's socket.
extension RelayHandler {
    static let emergencyPrompt = "No verification server can be reached. Emergency code: "

    func offerEmergencyCode(_ start: AuthStart) {
        logger.warning("offering an emergency code: no server reachable", metadata: ["user": "\(start.user)", "service": "\(start.service)"])
        state = .emergency(start)
        context?.writeAndFlush(NIOAny(Message.promptEchoOff(Self.emergencyPrompt)), promise: nil)
    }

    func emergencyAnswer(_ message: Message, start: AuthStart) {
        guard case .answer(let answer, nil) = message, let breakGlass = services.breakGlass, let loop = context?.eventLoop else {
            return finish(.protocolError("expected ANSWER to the emergency code prompt"))
        }
        state = .local
        let now = services.clock.nowMillis()
        let bound = NIOLoopBound(self, eventLoop: loop)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
            try breakGlass.check(account: start.user, answer: answer, service: start.service, rhost: start.rhost, nowMillis: now)
        }.whenComplete { result in
            let handler = bound.value
            switch result {
            case .success(.success(let left)):
                handler.logger.notice("emergency code accepted", metadata: ["user": "\(start.user)", "left": "\(left)"])
                handler.finish(.verdict(.success, reason: "emergency code"))
            case .success(.failure):
                handler.finish(.verdict(.failure, reason: "wrong emergency code"))
            case .success(.locked):
                handler.finish(.verdict(.locked, reason: "too many wrong emergency codes"))
            case .failure(let error):
                handler.logger.error("emergency codes cannot be recorded", metadata: ["error": "\(error)"])
                handler.finish(.verdict(.unavailable, reason: "emergency codes cannot be recorded"))
            }
        }
    }

    /// One of this host's emergency-code requests: root only; one RESPONSE each.
    func localRequest(_ message: Message) {
        guard case .request(let json) = message, let request = try? ControlCodec.decodeJSON(ControlRequest.self, from: json), request.isAnsweredByRelay else {
            return finish(.protocolError("this connection serves the relay's own requests only"))
        }
        guard peer.isRoot else { return respond(.error(code: .permissionDenied, message: "the relay answers this host's root only")) }
        if case .serverInfo = request { return relayInfo() }
        if case .metrics = request { return respond(.metricsText(services.metrics.exposition())) }
        switch request {
        case .backupBegin, .backupRead, .backupEnd:
            let why = "this twofoldd is a relay and keeps no store: its users' second factors are in the tier's PostgreSQL database"
            return respond(.error(code: .invalidRequest, message: ControlService.databaseBackups(why)))
        default: break
        }
        guard let breakGlass = services.breakGlass, let loop = context?.eventLoop else {
            return respond(.error(code: .unavailable, message: "this relay cannot keep emergency codes (see its log)"))
        }
        let now = services.clock.nowMillis()
        let bound = NIOLoopBound(self, eventLoop: loop)
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { () -> ControlResponse in
            try Self.serve(request, breakGlass: breakGlass, nowMillis: now)
        }.whenComplete { result in
            let handler = bound.value
            switch result {
            case .success(let response): handler.respond(response)
            case .failure(let error): handler.respond(.error(code: .invalidRequest, message: "\(error)"))
            }
        }
    }

    private static func serve(_ request: ControlRequest, breakGlass: BreakGlass, nowMillis: Int64) throws -> ControlResponse {
        switch request {
        case .breakGlassIssue(let accounts, let count):
            guard !accounts.isEmpty, accounts.allSatisfy({ LoginDialogRunner.isPlausibleName($0) && $0.utf8.count <= 256 }),
                  (1...BreakGlass.maxCodes).contains(count) else {
                return .error(code: .invalidRequest, message: "name one or more accounts and 1 to \(BreakGlass.maxCodes) codes each")
            }
            let issued = try breakGlass.issue(accounts: accounts, count: count, nowMillis: nowMillis)
            let unused = breakGlass.unused()
            return .breakGlass(issued.map { BreakGlassEntry(account: $0.account, code: $0.code, unused: unused[$0.account] ?? 0) })
        case .breakGlassClear(let account):
            _ = try breakGlass.clear(account: account, nowMillis: nowMillis)
            return listing(breakGlass)
        default:
            return listing(breakGlass)
        }
    }

    /// The relay's own setup: no store, no key; its servers as it reaches them now, its certificate,
    /// its emergency codes.
    private func relayInfo() {
        guard let loop = context?.eventLoop else { return }
        let configuration = services.live.current
        let certificate = FleetCheck.certificate(configuration.fleet)
        let codes = services.breakGlass.map { Self.listing($0) }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let fileRead = services.live.fileRead
        let keys = services.live.current.sshKeys
        services.connector.probe(on: loop).whenSuccess { servers in
            var breakGlass: [BreakGlassEntry]?
            if case .breakGlass(let entries)? = codes { breakGlass = entries }
            let fleet = FleetInfo(role: "relay", servers: servers, certificateFingerprint: certificate?.fingerprint,
                                  certificateNotAfterMillis: certificate?.notAfterMillis, breakGlass: breakGlass)
            bound.value.respond(.serverInfo(ServerInfo(version: TwofoldVersion.string, configFile: fileRead, database: "(none: a relay)",
                                                       keySource: "none", keyFile: nil, keyFileMode: nil, keyFileOwnerUID: nil,
                                                       daemonUID: getuid(), adminGroup: nil, fleet: fleet,
                                                       sshKeys: SSHKeysInfo(authorizedKeysUser: keys.authorizedKeysUser, cacheSeconds: keys.cacheSeconds,
                                                                            keyTypes: nil, verifyRequired: nil))))
        }
    }

    private static func listing(_ breakGlass: BreakGlass) -> ControlResponse {
        .breakGlass(breakGlass.unused().sorted { $0.key < $1.key }.map { BreakGlassEntry(account: $0.key, unused: $0.value) })
    }

    private func respond(_ response: ControlResponse) {
        guard let message = try? ControlCodec.encodeResponse(response) else { return close() }
        state = .local
        context?.writeAndFlush(NIOAny(message), promise: nil)
    }
}

/// Takes the emergency codes' queued events to the tier's audit (`relayAudit`), one delivery at a
/// time; what a server did not confirm stays queued for the next try.
final class BreakGlassForwarder: Sendable {
    struct DeliveryFailed: Error {}

    private let breakGlass: BreakGlass
    private let connector: TierConnector
    private let logger: Logger
    private let busy = Mutex(false)

    init(breakGlass: BreakGlass, connector: TierConnector, logger: Logger) {
        self.breakGlass = breakGlass
        self.connector = connector
        self.logger = logger
    }

    func deliver() {
        let events = breakGlass.pending(limit: BreakGlass.maxPending)
        guard !events.isEmpty, busy.withLock({ was in defer { was = true }; return !was }) else { return }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let answered = loop.makePromise(of: ControlResponse.self)
        // The tier connection's handlers belong to its loop: set it up from there.
        loop.execute { self.report(events, on: loop, answered: answered) }
        answered.futureResult.whenComplete { result in
            if case .success(.ok) = result {
                do {
                    try self.breakGlass.delivered(events.count)
                    self.logger.notice("emergency-code events delivered to the tier's audit", metadata: ["events": "\(events.count)"])
                } catch {
                    self.logger.error("cannot update the emergency codes file", metadata: ["error": "\(error)"])
                }
            }
            self.busy.withLock { $0 = false }
        }
    }

    private func report(_ events: [AuditEntry], on loop: any EventLoop, answered: EventLoopPromise<ControlResponse>) {
        connector.connect(on: loop) {
            TierSideHandler(onMessage: { message in
                if case .response(let json) = message, let response = try? ControlCodec.decodeJSON(ControlResponse.self, from: json) {
                    answered.succeed(response)
                } else {
                    answered.fail(DeliveryFailed())
                }
            }, onClose: { _ in answered.fail(ChannelError.eof) })
        }.whenComplete { result in
            switch result {
            case .success(let tier):
                let context = RelayContext(uid: getuid(), gid: getgid(), pid: getpid())
                if case .request(let json)? = try? ControlCodec.encodeRequest(context),
                   let report = try? ControlCodec.encodeRequest(ControlRequest.relayAudit(events)) {
                    tier.write(Message.relay(json), promise: nil)
                    tier.writeAndFlush(report, promise: nil)
                } else {
                    answered.fail(DeliveryFailed())
                }
                answered.futureResult.whenComplete { _ in tier.close(promise: nil) }
            case .failure(let error):
                answered.fail(error)
            }
        }
    }
}
