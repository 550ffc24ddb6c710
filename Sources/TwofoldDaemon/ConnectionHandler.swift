import Logging
import NIOCore
import NIOPosix
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// What every connection handler shares.
struct ConnectionServices: Sendable {
    let authenticator: Authenticator
    let dialogs: LoginDialogRunner
    let control: ControlService
    let admission: AdmissionControl
    let refusals: RefusalAuditor
    /// Verdicts owed by a client's deadline, swept on the socket loop.
    let deadlines: VerdictDeadlines
    /// How login dialogs ended, counted on the socket loop.
    let verifies: LoopVerifyCounters
    let logger: Logger
    /// The socket loop's synchronous login reader, or nil (the store has no such reader).
    let reader: LoopLoginReader?
}

/// A login reader and the one event loop allowed to use it.
final class LoopLoginReader: @unchecked Sendable {
    // Used only on `loop` (checked), so never from two threads.
    private let reader: any LoginReader
    let loop: any EventLoop

    init(_ reader: any LoginReader, loop: any EventLoop) {
        self.reader = reader
        self.loop = loop
    }

    func loginRecord(_ name: String) throws -> UserRecord? {
        loop.preconditionInEventLoop()
        return try reader.loginRecord(name)
    }
}

/// Sent through a connection's pipeline when the daemon ends it (a timeout, or shutdown): a started
/// login dialog gets this verdict before the connection closes, never a bare close.
struct DialogCutOff: Sendable {
    let verdict: VerdictCode
    let reason: String
}

/// One connection as a state machine on its event loop.
///
/// A login dialog (AUTH_START → PROMPT → ANSWER → VERDICT) runs entirely on the loop: the user's
/// record is read synchronously with the loop's own reader, the code is checked in place, and the
/// only thing that leaves the loop is the group commit, whose completion brings the dialog back.
/// The rare paths that await the store between messages (enroll at login, control requests) run
/// as a task over a `TaskBridge`. Once a dialog has started, it always ends with a VERDICT (or a
/// PROTOCOL_ERROR), whatever ends it: a timeout, shutdown, a limit.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    typealias OutboundOut = Message

    private enum State {
        /// Nothing received yet.
        case awaitingFirst
        /// The start of a login is being decided (store read done; maybe an audit commit in flight).
        case starting(LoginContext)
        /// The code prompt was sent (with what it offers by delivered codes).
        case awaitingAnswer(LoginContext, UserRecord, DeliveryOffer)
        /// The answer is being checked (a commit or a throttle delay in flight).
        case checking(LoginContext)
        /// A task drives a login dialog (enroll at login) through the bridge.
        case bridgedLogin(LoginContext)
        /// A task serves control requests through the bridge.
        case bridgedControl
        /// The verdict is out; the connection is closing.
        case finished
    }

    private let services: ConnectionServices
    private let peer: PeerCredentials
    private var state = State.awaitingFirst
    private var context: ChannelHandlerContext?
    /// The channel's loop (kept after the handler is removed, so a step in flight still completes).
    private var eventLoop: (any EventLoop)?
    private var bridge: TaskBridge?
    private var ticket: AdmissionControl.DialogTicket?
    /// An answer is being checked under a verdict deadline (`VerdictDeadlines`).
    private var watched = false
    /// A login dialog whose outcome is not counted yet: when it began (AUTH_START) and its service.
    private var uncounted: (began: NIODeadline, service: String)?

    init(services: ConnectionServices, peer: PeerCredentials) {
        self.services = services
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        releaseTicket()
        disarmVerdictWatchdog()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch state {
        case .awaitingFirst:
            switch message {
            case .authStart(let start):
                beginLogin(start)
            case .request:
                let (control, peer) = (services.control, self.peer)
                state = .bridgedControl
                openBridge { dialog in try await control.serve(dialog: dialog, peer: peer) }
                bridge?.enqueue(message)
            default:
                protocolError(.unexpectedMessage("a connection must start with AUTH_START or REQUEST"))
            }
        case .awaitingAnswer(let login, let record, let offer):
            guard case .answer(let answer, _) = message else {
                protocolError(.unexpectedMessage("expected ANSWER after a prompt"))
                return
            }
            // The code prompt is text: no PAYLOAD belongs in its answer.
            if let error = Self.payloadError(message, login, promptHadPayload: false) {
                protocolError(error)
                return
            }
            if let channel = offer.channel(asked: answer) {
                deliver(login, record: record, channel: channel, offer: offer)
                return
            }
            state = .checking(login)
            armVerdictWatchdog(login)
            drive(services.authenticator.answerStep(answer: answer, record: record, context: login)) { handler, result in
                handler.finishCheck(login, result)
            }
        case .bridgedLogin(let login):
            // The client speaks only when asked: one ANSWER per prompt, nothing else.
            guard case .answer = message, bridge?.promptOutstanding == true else {
                bridge?.fail(.unexpectedMessage("no prompt is outstanding"))
                protocolError(.unexpectedMessage("no prompt is outstanding"))
                return
            }
            if let error = Self.payloadError(message, login, promptHadPayload: bridge?.payloadOutstanding == true) {
                bridge?.fail(error)
                protocolError(error)
                return
            }
            bridge?.enqueue(message)
        case .bridgedControl:
            bridge?.enqueue(message)
        case .starting, .checking:
            protocolError(.unexpectedMessage("no prompt is outstanding"))
        case .finished:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingAnswer(let login, _, _):
            state = .finished
            count(.abandoned)
            login.liveness?.markGone()
            drive(services.authenticator.audited(login, outcome: "abandoned", reason: "connection closed at the code prompt", then: ())) { _, _ in }
        case .starting(let login), .checking(let login):
            // The answer in flight is still decided, as abandoned: a right code is used up, a wrong one counted.
            login.liveness?.markGone()
        case .bridgedLogin(let login):
            count(.abandoned)   // unless its task sent the verdict already
            login.liveness?.markGone()
            bridge?.closeInput()
        case .bridgedControl:
            bridge?.closeInput()
        case .awaitingFirst, .finished:
            break
        }
        releaseTicket()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let cut = event as? DialogCutOff else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .awaitingFirst, .bridgedControl:
            state = .finished
            context.close(promise: nil)
        case .awaitingAnswer(let login, _, _):
            login.liveness?.markGone()
            let step = services.authenticator.audited(login, outcome: "abandoned", reason: "no answer at the code prompt: \(cut.reason)",
                                                      then: Message.verdict(cut.verdict, reason: cut.reason))
            state = .checking(login)
            drive(step) { handler, verdict in handler.finish(verdict) }
        case .starting(let login), .checking(let login), .bridgedLogin(let login):
            login.liveness?.markGone()
            finish(.verdict(cut.verdict, reason: cut.reason))
        case .finished:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ProtocolError {
            bridge?.fail(error)   // a task learns of it at its next read
            // A control task answers it itself; everything else ends here.
            if case .bridgedControl = state { return }
            protocolError(error)
        } else {
            services.logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: - Login on the loop

    private func beginLogin(_ start: AuthStart) {
        let login = LoginContext(start: start, peer: peer, liveness: DialogLiveness())
        state = .starting(login)
        uncounted = (.now(), start.service)
        // What the client declared, as sent: "absent" is a module from before CAPABILITIES.
        services.logger.debug("login dialog", metadata: [
            "user": "\(start.user)", "service": "\(start.service)", "peer": "\(peer)",
            "capabilities": "\(start.capabilities.map(String.init(describing:)) ?? "absent")",
        ])
        guard LoginDialogRunner.isPlausibleName(start.user), LoginDialogRunner.isPlausibleName(start.service) else {
            services.logger.warning("bad login request", metadata: ["peer": "\(peer)"])
            finish(.verdict(.badRequest, reason: "user and service must be non-empty names without control characters"))
            return
        }
        // sshd, login, su and sudo run PAM as root; a screen locker runs as the user itself. Its
        // account lookup goes through NSS (possibly LDAP or sssd), so it runs on NIO's thread pool,
        // not on the loop that serves every other login.
        // A relayed peer was authorized so by its relay, on its host: that host's claim decides
        // logins on that host only, and this server may not even know the account.
        if !peer.isRoot, peer.relayed == nil, let loop = eventLoop {
            let bound = NIOLoopBound(self, eventLoop: loop)
            let user = start.user
            NIOThreadPool.singleton.runIfActive(eventLoop: loop) { Accounts.uid(of: user) }.whenComplete { result in
                bound.value.peerLookedUp(login, uid: (try? result.get()) ?? nil)
            }
            return
        }
        readAndStart(login)
    }

    /// A non-root peer may ask only about its own account.
    private func peerLookedUp(_ login: LoginContext, uid: UInt32?) {
        guard case .starting = state else { return }
        // The lookup ran on the thread pool: the peer may have closed meanwhile (the handler was
        // removed). Then nothing more is done for it, above all no dialog slot taken, which no
        // close would give back (max_dialogs_per_user would refuse the account until a restart).
        guard context != nil, login.liveness?.isGone != true else {
            state = .finished
            count(.abandoned)
            return
        }
        guard uid == peer.uid else {
            refuse(login, "peer uid \(peer.uid) may not ask about this user", userText: nil, verdict: .denied)
            return
        }
        readAndStart(login)
    }

    /// Ends a dialog refused before anything was asked: audited through the refusal auditor (at
    /// most a few records a minute per uid), then ERROR_MSG and VERDICT DENIED.
    private func refuse(_ login: LoginContext, _ reason: String, userText: String?, verdict: VerdictCode = .denied) {
        let mutations = services.refusals.refused(services.authenticator.auditRecord(login, outcome: "refused", reason: reason))
        let messages = (userText.map { [Message.errorMessage($0)] } ?? []) + [Message.verdict(verdict, reason: "refused: \(reason)")]
        guard !mutations.isEmpty else { return finish(messages) }
        drive(LoginStep<Void>.record(mutations, then: ())) { handler, _ in handler.finish(messages) }
    }

    /// Counts the dialog under the caps per party, then reads the user's record on this loop and
    /// decides what to ask. It runs only once the peer may ask about the user, so a peer that is
    /// refused never holds a slot of the user it named. PAM_RUSER and PAM_RHOST count only from
    /// root (PAM filled them in); a non-root peer could name anyone there, and its own dialogs are
    /// already bounded by its uid's connection cap.
    private func readAndStart(_ login: LoginContext) {
        let trusted = peer.isRoot
        switch services.admission.admitDialog(user: login.user, ruser: trusted ? login.ruser : nil, rhost: trusted ? login.rhost : nil) {
        case .failure(let refusal):
            refuse(login, refusal.description, userText: "Too many login attempts are in progress for this account. Try again later.")
            return
        case .success(let ticket):
            self.ticket = ticket
        }
        guard let reader = services.reader, let loop = eventLoop, reader.loop === loop else {
            let authenticator = services.authenticator
            drive(.async { await authenticator.begin(login) }) { handler, start in handler.started(login, start) }
            return
        }
        let read: Result<UserRecord?, StoreError>
        do {
            read = .success(try reader.loginRecord(login.user))
        } catch {
            read = .failure(error as? StoreError ?? .database(String(describing: type(of: error))))
        }
        drive(services.authenticator.startStep(login, read: read)) { handler, start in handler.started(login, start) }
    }

    private func started(_ login: LoginContext, _ start: LoginStart) {
        guard case .starting = state else { return }
        switch start {
        case .ignore:
            finish(.verdict(.ignore, reason: "not enrolled"))
        case .grace(let notice):
            finish(.info(notice), .verdict(.ignore, reason: "grace period"))
        case .enroll:
            let dialogs = services.dialogs
            state = .bridgedLogin(login)
            openBridge(capabilities: login.capabilities) { dialog in try await dialogs.enrollAtLogin(login, dialog: dialog) }
        case .denied(let text):
            finish((text.map { [Message.errorMessage($0)] } ?? []) + [.verdict(.denied, reason: "required but not enrolled")])
        case .locked:
            finish(.errorMessage(LoginDialogRunner.lockedText), .verdict(.locked, reason: "locked"))
        case .unavailable:
            finish(.verdict(.unavailable, reason: "store unavailable"))
        case .askCode(let record) where services.authenticator.startsWithKey(record, context: login):
            // The key step awaits the module's talk with the key: it runs as a task.
            let dialogs = services.dialogs
            state = .bridgedLogin(login)
            openBridge(capabilities: login.capabilities) { dialog in try await dialogs.keyLogin(login, record: record, dialog: dialog) }
        case .askCode(let record):
            let offer = services.authenticator.deliveryOffer(record, context: login)
            if let channel = offer.sendNow {
                deliver(login, record: record, channel: channel, offer: offer)
                return
            }
            state = .awaitingAnswer(login, record, offer)
            context?.writeAndFlush(wrapOutboundOut(.promptEchoOff(offer.prompt)), promise: nil)
        }
    }

    /// A delivered code, sent before the first prompt or asked for at it: the send awaits the
    /// delivery service, so the rest of the dialog runs as a task.
    private func deliver(_ login: LoginContext, record: UserRecord, channel: DeliveryChannel, offer: DeliveryOffer) {
        let dialogs = services.dialogs
        state = .bridgedLogin(login)
        openBridge(capabilities: login.capabilities) { dialog in
            try await dialogs.deliverAndAsk(login, record: record, channel: channel, offer: offer, dialog: dialog)
        }
    }

    /// The commit of an answer can stall (a slow disk): shortly before the client stops waiting,
    /// give it a verdict it maps to a failure, and treat what the commit decides later as abandoned.
    private func armVerdictWatchdog(_ login: LoginContext) {
        armWatchdog(until: .now() + .milliseconds(max(login.clientWaitMillis - 500, 0))) { handler in
            guard case .checking = handler.state else { return }
            login.liveness?.markGone()
            handler.services.logger.warning("no decision within the client's deadline", metadata: ["user": "\(login.user)"])
            handler.finish(.verdict(.unavailable, reason: "no decision within the client's deadline"))
        }
    }

    /// Calls `expire` at the first sweep (every 250 ms) after `deadline`, unless disarmed first. An
    /// answer's deadline is set 500 ms before the client's, so the verdict goes out before it.
    private func armWatchdog(until deadline: NIODeadline, _ expire: @escaping (ConnectionHandler) -> Void) {
        guard let loop = eventLoop, services.deadlines.loop === loop else { return }
        let bound = NIOLoopBound(self, eventLoop: loop)
        watched = true
        services.deadlines.watch(ObjectIdentifier(self), until: deadline) {
            let handler = bound.value
            handler.watched = false
            expire(handler)
        }
    }

    private func disarmVerdictWatchdog() {
        guard watched else { return }
        watched = false
        services.deadlines.clear(ObjectIdentifier(self))
    }

    private func finishCheck(_ login: LoginContext, _ result: LoginResult) {
        disarmVerdictWatchdog()
        guard case .checking = state else {
            if case .success = result {
                // Accepted after the watchdog answered: the login did not happen; say so in the audit.
                drive(services.authenticator.audited(login, outcome: "abandoned", reason: "code accepted after the client's deadline had passed; no login",
                                                     then: ())) { _, _ in }
            }
            return
        }
        let (messages, outcome) = LoginDialogRunner.ending(result)
        finish(messages, outcome: outcome)
    }

    /// Runs `step` to its end, even if the peer has gone (a failure is still counted); every
    /// continuation comes back to this loop.
    private func drive<Result>(_ step: LoginStep<Result>, then finish: @escaping (ConnectionHandler, Result) -> Void) {
        guard let loop = eventLoop else { return }
        switch step {
        case .done(let result):
            finish(self, result)
        case .commit(let mutations, let next):
            let bound = NIOLoopBound((self, finish), eventLoop: loop)
            services.authenticator.commit(mutations) { results in
                loop.execute {
                    let (handler, finish) = bound.value
                    handler.drive(next(results), then: finish)
                }
            }
        case .record(let mutations, let result):
            // Decided already; the answer waits for its audit record, but at the start of a dialog
            // only for half the client's wait (a stalled disk): a decision such as LOCKED or DENIED
            // left to the client's timeout would read as "unavailable", which failmode=open lets
            // through. The record is stored (and logged) when the commit comes back.
            let pending = NIOLoopBoundBox<((ConnectionHandler, Result) -> Void)?>(finish, eventLoop: loop)
            let bound = NIOLoopBound(self, eventLoop: loop)
            let starting: LoginContext? = if case .starting(let login) = state { login } else { nil }
            if let login = starting {
                let deadline = LoginContext.recordsBy(began: uncounted?.began ?? .now(), clientWaitMillis: login.clientWaitMillis)
                armWatchdog(until: deadline) { handler in
                    guard let finish = pending.value else { return }
                    pending.value = nil
                    handler.services.logger.warning("audit record not stored within half the client's wait; answered without waiting for it",
                                                    metadata: ["user": "\(login.user)"])
                    finish(handler, result)
                }
            }
            services.authenticator.commit(mutations) { _ in
                loop.execute {
                    guard let finish = pending.value else { return }
                    pending.value = nil
                    let handler = bound.value
                    if starting != nil { handler.disarmVerdictWatchdog() }
                    finish(handler, result)
                }
            }
        case .delay(let millis, let next):
            let bound = NIOLoopBound((self, finish), eventLoop: loop)
            loop.scheduleTask(in: .milliseconds(millis)) {
                let (handler, finish) = bound.value
                handler.drive(next(), then: finish)
            }
        case .async(let work):
            let bound = NIOLoopBound((self, finish), eventLoop: loop)
            Task {
                let result = await work()
                loop.execute {
                    let (handler, finish) = bound.value
                    finish(handler, result)
                }
            }
        }
    }

    /// Sends the last messages of the connection, then closes it.
    private func finish(_ messages: Message...) {
        finish(messages)
    }

    /// `outcome`: how the login dialog ended, when the last message does not say all of it.
    private func finish(_ messages: [Message], outcome: VerifyOutcome? = nil) {
        if case .finished = state { return }
        state = .finished
        disarmVerdictWatchdog()
        if let ending = outcome ?? VerifyOutcome(ending: messages.last!) { count(ending) }
        guard let context else { return }
        for message in messages.dropLast() {
            context.write(wrapOutboundOut(message), promise: nil)
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(messages.last!), promise: promise)
        let channel = context.channel
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    /// An ANSWER's PAYLOAD is a protocol error unless the client declared `binaryPayload` and the
    /// prompt it answers carried a PAYLOAD (the key step's, `KeyLoginDialog`; the code prompt never does).
    static func payloadError(_ answer: Message, _ login: LoginContext, promptHadPayload: Bool) -> ProtocolError? {
        guard answer.payload != nil else { return nil }
        do {
            try login.capabilities.check(answer)
        } catch {
            return error as? ProtocolError
        }
        return promptHadPayload ? nil : .unexpectedMessage("PAYLOAD in an ANSWER to a prompt without one")
    }

    private func protocolError(_ error: ProtocolError) {
        services.logger.warning("protocol error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        finish(.protocolError(error.description))
    }

    /// Counts how the login dialog ended, once; nothing for a control connection.
    private func count(_ outcome: VerifyOutcome) {
        guard let (began, service) = uncounted else { return }
        uncounted = nil
        // The host the login is on: a relayed peer's registered host, else this one.
        services.verifies.verified(outcome, service: service, host: peer.relayed?.host ?? HostName.local, began: began)
    }

    private func releaseTicket() {
        if let ticket {
            services.admission.release(ticket)
            self.ticket = nil
        }
    }

    // MARK: - The bridge to a task

    /// `capabilities`: a login dialog's (what the task may send the client); `[]` for control requests.
    private func openBridge(capabilities: ClientCapabilities = [], _ body: @escaping @Sendable (AsyncDialog) async throws -> Void) {
        guard let context else { return }
        // A login task's verdict ends its dialog (weak: the bridge lives as long as this handler).
        let bridge = TaskBridge(channel: context.channel, capabilities: capabilities) { [weak self] message in
            if let ending = VerifyOutcome(ending: message) { self?.count(ending) }
        }
        self.bridge = bridge
        let dialog = AsyncDialog(bridge: NIOLoopBound(bridge, eventLoop: context.eventLoop), channel: context.channel)
        let logger = services.logger
        let peer = self.peer
        Task {
            do {
                try await body(dialog)
            } catch let error as ProtocolError {
                logger.warning("protocol error", metadata: ["peer": "\(peer)", "error": "\(error)"])
                try? await dialog.send(.protocolError(error.description))
            } catch {
                logger.debug("connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
            }
            try? await dialog.channel.close()
        }
    }
}
