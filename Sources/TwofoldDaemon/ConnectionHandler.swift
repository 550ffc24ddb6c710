import Logging
import NIOCore
import NIOPosix
import TwofoldProtocol
import TwofoldStore

/// What every connection handler shares.
struct ConnectionServices: Sendable {
    let authenticator: Authenticator
    let dialogs: LoginDialogRunner
    let control: ControlService
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

/// One connection as a state machine on its event loop.
///
/// A login dialog (AUTH_START → PROMPT → ANSWER → VERDICT) runs entirely on the loop: the user's
/// record is read synchronously with the loop's own reader, the code is checked in place, and the
/// only thing that leaves the loop is the group commit, whose completion brings the dialog back.
/// No task, no async channel, no executor hop. The rare paths that await the store between
/// messages (enroll at login, control requests) run as a task that talks to the connection through
/// `AsyncDialog`, with backpressure (reading stops while messages wait unconsumed).
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    typealias OutboundOut = Message

    private enum State {
        /// Nothing received yet.
        case awaitingFirst
        /// The start of a login is being decided (store read done; maybe an audit commit in flight).
        case starting(LoginContext)
        /// The code prompt was sent.
        case awaitingAnswer(LoginContext, UserRecord)
        /// The answer is being checked (a commit or a throttle delay in flight).
        case checking(LoginContext)
        /// A task drives the connection through `AsyncDialog`.
        case bridged
        /// The verdict is out; the connection is closing.
        case finished
    }

    private let services: ConnectionServices
    private let peer: PeerCredentials
    private var state = State.awaitingFirst
    private var context: ChannelHandlerContext?
    /// The channel's loop (kept after the handler is removed, so a step in flight still completes).
    private var eventLoop: (any EventLoop)?

    // The bridge to a task: messages received and not yet taken, and a task waiting for one.
    private var queued: [Message] = []
    private var waiter: CheckedContinuation<Message?, any Error>?
    private var inputClosed = false
    /// A protocol error that arrived while the task was not waiting; thrown at its next read.
    private var pendingError: ProtocolError?
    private var readingPaused = false
    private static let pauseReadingAt = 16

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
                openBridge { dialog in try await control.serve(dialog: dialog, peer: peer) }
                enqueue(message)
            default:
                protocolError(.unexpectedMessage("a connection must start with AUTH_START or REQUEST"))
            }
        case .awaitingAnswer(let login, let record):
            guard case .answer(let answer) = message else {
                protocolError(.unexpectedMessage("expected ANSWER after a prompt"))
                return
            }
            state = .checking(login)
            drive(services.authenticator.answerStep(answer: answer, record: record, context: login)) { handler, result in
                handler.finishCheck(result)
            }
        case .bridged:
            enqueue(message)
        case .starting, .checking:
            // The client spoke out of turn (nothing was asked).
            protocolError(.unexpectedMessage("no prompt is outstanding"))
        case .finished:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingAnswer(let login, _):
            state = .finished
            drive(services.authenticator.audited(login, outcome: "abandoned", reason: "connection closed at the code prompt", then: ())) { _, _ in }
        case .bridged:
            inputClosed = true
            resumeWaiter()
        default:
            break
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? ProtocolError {
            if case .bridged = state {
                // The task learns of it at its next read.
                inputClosed = true
                failWaiter(error)
                return
            }
            protocolError(error)
        } else {
            services.logger.debug("connection error", metadata: ["peer": "\(peer)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: - Login on the loop

    private func beginLogin(_ start: AuthStart) {
        let login = LoginContext(user: start.user, service: start.service, rhost: start.rhost, tty: start.tty, peer: peer)
        state = .starting(login)
        guard LoginDialogRunner.isPlausibleName(start.user), LoginDialogRunner.isPlausibleName(start.service) else {
            services.logger.warning("bad login request", metadata: ["peer": "\(peer)"])
            finish(.verdict(.badRequest, reason: "user and service must be non-empty names without control characters"))
            return
        }
        // sshd, login, su and sudo run PAM as root; a screen locker runs as the user itself. Its
        // account lookup goes through NSS (possibly LDAP or sssd), so it runs on NIO's thread pool,
        // not on the loop that serves every other login.
        if !peer.isRoot, let loop = eventLoop {
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
        guard uid == peer.uid else {
            services.logger.warning("login dialog refused: peer is neither root nor the user", metadata: ["peer": "\(peer)", "user": "\(login.user)"])
            let step = services.authenticator.audited(login, outcome: "denied", reason: "peer uid \(peer.uid) may not ask about this user",
                                                      then: Message.verdict(.denied, reason: "peer not allowed"))
            drive(step) { handler, verdict in handler.finish(verdict) }
            return
        }
        readAndStart(login)
    }

    /// Reads the user's record on this loop and decides what to ask.
    private func readAndStart(_ login: LoginContext) {
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
            openBridge { dialog in try await dialogs.enrollAtLogin(login, dialog: dialog) }
        case .denied(let text):
            finish((text.map { [Message.errorMessage($0)] } ?? []) + [.verdict(.denied, reason: "required but not enrolled")])
        case .locked:
            finish(.errorMessage(LoginDialogRunner.lockedText), .verdict(.locked, reason: "locked"))
        case .unavailable:
            finish(.verdict(.unavailable, reason: "store unavailable"))
        case .askCode(let record):
            state = .awaitingAnswer(login, record)
            context?.writeAndFlush(wrapOutboundOut(.promptEchoOff(LoginDialogRunner.codePrompt)), promise: nil)
        }
    }

    private func finishCheck(_ result: LoginResult) {
        guard case .checking = state else { return }
        switch result {
        case .success(let info):
            finish((info.map { [Message.info($0)] } ?? []) + [.verdict(.success, reason: nil)])
        case .failure:
            finish(.verdict(.failure, reason: "wrong code"))
        case .locked:
            finish(.errorMessage(LoginDialogRunner.lockedText), .verdict(.locked, reason: "locked"))
        case .unavailable:
            finish(.verdict(.unavailable, reason: "store unavailable"))
        }
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

    private func finish(_ messages: [Message]) {
        if case .finished = state { return }
        state = .finished
        guard let context else { return }
        for message in messages.dropLast() {
            context.write(wrapOutboundOut(message), promise: nil)
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(messages.last!), promise: promise)
        let channel = context.channel
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    private func protocolError(_ error: ProtocolError) {
        services.logger.warning("protocol error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        finish(.protocolError(error.description))
    }

    // MARK: - The bridge to a task

    private func openBridge(_ body: @escaping @Sendable (AsyncDialog) async throws -> Void) {
        guard let context else { return }
        state = .bridged
        let dialog = AsyncDialog(handler: NIOLoopBound(self, eventLoop: context.eventLoop), channel: context.channel)
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

    private func enqueue(_ message: Message) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: message)
            return
        }
        queued.append(message)
        if queued.count >= Self.pauseReadingAt, !readingPaused, let context {
            readingPaused = true
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        }
    }

    /// Gives the task the next message (nil once the peer closed; a protocol error once it sent
    /// garbage), or parks it until one arrives.
    fileprivate func take(_ continuation: CheckedContinuation<Message?, any Error>) {
        if !queued.isEmpty {
            continuation.resume(returning: queued.removeFirst())
            if readingPaused && queued.count < Self.pauseReadingAt / 2, let context {
                readingPaused = false
                try? context.channel.syncOptions?.setOption(.autoRead, value: true)
                context.read()
            }
        } else if let error = pendingError {
            pendingError = nil
            continuation.resume(throwing: error)
        } else if inputClosed {
            continuation.resume(returning: nil)
        } else {
            waiter = continuation
        }
    }

    private func resumeWaiter() {
        if let waiter, queued.isEmpty {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }

    private func failWaiter(_ error: ProtocolError) {
        if let waiter {
            self.waiter = nil
            waiter.resume(throwing: error)
        } else {
            queued.removeAll()
            pendingError = error
        }
    }
}

/// The connection as seen from a task: receive the next message, send messages.
struct AsyncDialog: Sendable {
    fileprivate let handler: NIOLoopBound<ConnectionHandler>
    let channel: any Channel

    /// The next message from the peer; nil when it closed the connection.
    func receive() async throws -> Message? {
        let loop = handler.eventLoop
        let handler = self.handler
        return try await withCheckedThrowingContinuation { continuation in
            loop.execute { handler.value.take(continuation) }
        }
    }

    func send(_ message: Message) async throws {
        try await channel.writeAndFlush(message)
    }
}
