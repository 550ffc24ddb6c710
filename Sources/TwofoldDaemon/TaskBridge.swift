import NIOCore
import TwofoldProtocol

/// The connection as seen from a task: receive the next message, send messages. The rare paths
/// that await the store between messages (enroll at login, control requests) run as a task and
/// talk to their connection only through this.
struct AsyncDialog: Sendable {
    fileprivate let bridge: NIOLoopBound<TaskBridge>
    let channel: any Channel

    init(bridge: NIOLoopBound<TaskBridge>, channel: any Channel) {
        self.bridge = bridge
        self.channel = channel
    }

    /// The next message from the peer; nil when it closed the connection.
    func receive() async throws -> Message? {
        let bridge = self.bridge
        return try await withCheckedThrowingContinuation { continuation in
            bridge.eventLoop.execute { bridge.value.take(continuation) }
        }
    }

    /// Sends a message; a prompt makes one ANSWER welcome (anything else from a login client is out of turn).
    func send(_ message: Message) async throws {
        let bridge = self.bridge
        let promise = bridge.eventLoop.makePromise(of: Void.self)
        bridge.eventLoop.execute { bridge.value.write(message, promise: promise) }
        try await promise.futureResult.get()
    }
}

/// Messages received for a task and not yet taken, a task parked waiting for one, and the
/// backpressure between them: reading stops while `pauseReadingAt` messages wait unconsumed, so
/// a control connection holds at most that many frames (64 KiB each) however much the client
/// pipelines behind a request that waits (on a throttle delay, say). Lives on the connection's loop.
final class TaskBridge {
    static let pauseReadingAt = 4

    private let channel: any Channel
    private var queued: [Message] = []
    private var waiter: CheckedContinuation<Message?, any Error>?
    private var inputClosed = false
    /// A protocol error that arrived while the task was not waiting; thrown at its next read.
    private var pendingError: ProtocolError?
    private var readingPaused = false
    /// Login dialogs only: a prompt was sent and its ANSWER has not come yet.
    private(set) var promptOutstanding = false
    /// Login dialogs only: that prompt carried a PAYLOAD, so its ANSWER may carry one.
    private(set) var payloadOutstanding = false
    /// What the client declared in AUTH_START: the task may send it nothing that needs more.
    private let capabilities: ClientCapabilities
    /// Hears of each message the task sends (a login dialog counts its verdict).
    private let sent: (Message) -> Void

    init(channel: any Channel, capabilities: ClientCapabilities = [], sent: @escaping (Message) -> Void = { _ in }) {
        self.channel = channel
        self.capabilities = capabilities
        self.sent = sent
    }

    /// A message from the peer, for the task.
    func enqueue(_ message: Message) {
        if case .answer = message {
            promptOutstanding = false
            payloadOutstanding = false
        }
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: message)
            return
        }
        queued.append(message)
        if queued.count >= Self.pauseReadingAt, !readingPaused {
            readingPaused = true
            try? channel.syncOptions?.setOption(.autoRead, value: false)
        }
    }

    /// Gives the task the next message (nil once the peer closed; a protocol error once it sent
    /// garbage), or parks it until one arrives.
    func take(_ continuation: CheckedContinuation<Message?, any Error>) {
        if !queued.isEmpty {
            continuation.resume(returning: queued.removeFirst())
            if readingPaused && queued.count < Self.pauseReadingAt / 2 {
                readingPaused = false
                try? channel.syncOptions?.setOption(.autoRead, value: true)
                channel.read()
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

    /// Sends a message of the task's. One the client did not declare it can carry (a PAYLOAD
    /// without `binaryPayload`) is not sent: the task's send throws the protocol error instead.
    func write(_ message: Message, promise: EventLoopPromise<Void>) {
        do {
            try capabilities.check(message)
        } catch {
            promise.fail(error)
            return
        }
        switch message {
        case .promptEchoOff(_, let payload), .promptEchoOn(_, let payload):
            promptOutstanding = true
            payloadOutstanding = payload != nil
        default: break
        }
        sent(message)
        channel.writeAndFlush(message, promise: promise)
    }

    /// The peer closed: a parked task gets nil, a later read too (after what is queued).
    func closeInput() {
        inputClosed = true
        if let waiter, queued.isEmpty {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }

    /// The peer broke the protocol: the task learns of it at its next read.
    func fail(_ error: ProtocolError) {
        inputClosed = true
        if let waiter {
            self.waiter = nil
            waiter.resume(throwing: error)
        } else {
            queued.removeAll()
            pendingError = error
        }
    }
}
