#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TwofoldProtocol

/// An accepted connection: the async channel and who is at the other end.
struct Connection: Sendable {
    var channel: NIOAsyncChannel<Message, Message>
    var peer: PeerCredentials
}

/// Where the server takes its listening socket from.
public enum ListenSource: Sendable, Equatable {
    /// Bind this path (a stale socket file is replaced; the file is made connectable by everyone:
    /// authorization is by SO_PEERCRED, not by file mode).
    case path(String)
    /// A bound, listening socket handed over by systemd (LISTEN_FDS).
    case descriptor(Int32)
}

/// The Unix-socket server of `twofoldd`, run as a service-lifecycle `Service`: one task per
/// connection, a cap on concurrent connections, idle and total timeouts per connection, and on
/// graceful shutdown it stops accepting, lets in-flight requests finish (for at most
/// `shutdownGraceSeconds`) and returns.
public final class SocketServer: Service, Sendable {
    /// Lifecycle of the server.
    enum State: Sendable {
        case initial
        case listening(Channel)
        case shuttingDown
        case stopped
    }

    private let source: ListenSource
    private let configuration: DaemonConfiguration
    private let dialogs: LoginDialogRunner
    private let control: ControlService
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let environment: [String: String]
    private let shutdownGraceSeconds: Int64
    private let state = Mutex<State>(.initial)
    private let open = Mutex<[ObjectIdentifier: Channel]>([:])
    private let active = Atomic<Int>(0)
    private let onListening: @Sendable () -> Void

    init(source: ListenSource, configuration: DaemonConfiguration, authenticator: Authenticator, enrollment: EnrollmentService,
                control: ControlService, logger: Logger, group: MultiThreadedEventLoopGroup = .singleton, environment: [String: String] = [:],
                shutdownGraceSeconds: Int64 = 10, onListening: @escaping @Sendable () -> Void = {}) {
        self.source = source
        self.configuration = configuration
        self.dialogs = LoginDialogRunner(authenticator: authenticator, enrollment: enrollment, logger: logger)
        self.control = control
        self.logger = logger
        self.group = group
        self.environment = environment
        self.shutdownGraceSeconds = shutdownGraceSeconds
        self.onListening = onListening
    }

    public func run() async throws {
        let server = try await bind()
        state.withLock { $0 = .listening(server.channel) }
        logger.notice("listening", metadata: ["socket": "\(describe(source))", "max_connections": "\(configuration.maxConnections)"])
        SystemdNotify.send("READY=1\nSTATUS=listening on \(describe(source))\nMAINPID=\(getpid())", environment: environment)
        onListening()

        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { tasks in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        let (before, _) = active.add(1, ordering: .relaxed)
                        guard before < configuration.maxConnections else {
                            self.active.subtract(1, ordering: .relaxed)
                            logger.warning("connection refused: too many connections", metadata: ["peer": "\(connection.peer)"])
                            // Close through the async channel: dropping it unfinished is a fatal
                            // error in NIO (a client opening too many connections must not crash us).
                            tasks.addTask { try? await connection.channel.executeThenClose { _, _ in } }
                            continue
                        }
                        tasks.addTask {
                            await self.serve(connection)
                            self.active.subtract(1, ordering: .relaxed)
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        state.withLock { $0 = .stopped }
        logger.notice("stopped")
    }

    /// Stops accepting; closes connections still open after the grace period.
    private func beginShutdown() {
        let listener: Channel? = state.withLock { state in
            guard case .listening(let channel) = state else { return nil }
            state = .shuttingDown
            return channel
        }
        guard let listener else { return }
        SystemdNotify.send("STOPPING=1", environment: environment)
        logger.notice("shutting down: no new connections")
        listener.close(promise: nil)
        listener.eventLoop.scheduleTask(in: .seconds(shutdownGraceSeconds)) {
            let remaining = self.open.withLock { Array($0.values) }
            for channel in remaining { channel.close(promise: nil) }
        }
    }

    private func bind() async throws -> NIOAsyncChannel<Connection, Never> {
        let idle = TimeAmount.seconds(Int64(configuration.idleTimeoutSeconds))
        let total = TimeAmount.seconds(Int64(configuration.connectionTimeoutSeconds))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
        let initializer: @Sendable (Channel) -> EventLoopFuture<Connection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                try sync.addHandler(IdleStateHandler(readTimeout: idle))
                try sync.addHandler(IdleCloseHandler())
                try sync.addHandler(ByteToMessageHandler(MessageDecoder()))
                try sync.addHandler(MessageToByteHandler(MessageEncoder()))
                let deadline = channel.eventLoop.scheduleTask(in: total) { channel.close(promise: nil) }
                channel.closeFuture.whenComplete { _ in deadline.cancel() }
                return try NIOAsyncChannel<Message, Message>(wrappingChannelSynchronously: channel)
            }.flatMap { asyncChannel in
                PeerCredentials.of(channel).map { Connection(channel: asyncChannel, peer: $0) }
            }
        }
        switch source {
        case .path(let path):
            try prepareSocketDirectory(for: path)
            let server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            guard chmod(path, 0o666) == 0 else { throw ConfigurationError("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
            return server
        case .descriptor(let fd):
            return try await bootstrap.bind(fd, childChannelInitializer: initializer)
        }
    }

    private func prepareSocketDirectory(for path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw ConfigurationError("cannot create socket directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    private func describe(_ source: ListenSource) -> String {
        switch source {
        case .path(let p): p
        case .descriptor(let fd): "systemd socket (fd \(fd))"
        }
    }

    /// Serves one connection. Nothing a client sends can throw out of here.
    private func serve(_ connection: Connection) async {
        let channel = connection.channel.channel
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = channel }
        defer { _ = open.withLock { $0.removeValue(forKey: id) } }
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var messages = inbound.makeAsyncIterator()
                do {
                    guard let first = try await messages.next() else { return }
                    switch first {
                    case .authStart(let start):
                        try await dialogs.run(start: start, peer: connection.peer, messages: &messages, outbound: outbound)
                    case .request(let json):
                        var next: [UInt8]? = json
                        while let request = next {
                            let response = await control.handle(json: request, peer: connection.peer)
                            try await outbound.write(response)
                            guard let more = try await messages.next() else { break }
                            guard case .request(let body) = more else {
                                throw ProtocolError.unexpectedMessage("a control connection may only send REQUEST")
                            }
                            next = body
                        }
                    default:
                        throw ProtocolError.unexpectedMessage("a connection must start with AUTH_START or REQUEST")
                    }
                } catch let error as ProtocolError {
                    logger.warning("protocol error", metadata: ["peer": "\(connection.peer)", "error": "\(error)"])
                    try? await outbound.write(.protocolError(error.description))
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["peer": "\(connection.peer)", "error": "\(error)"])
        }
    }
}
