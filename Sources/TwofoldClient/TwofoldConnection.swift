import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A blocking connection to `twofoldd` over its Unix socket, for the CLI, tests and benchmarks.
///
/// Every `send` and `receive` has its own deadline of `timeoutSeconds` (poll-based; the socket is
/// non-blocking once connected). On a timeout, EOF or protocol error the connection is closed, since
/// the stream can no longer be trusted. Not thread-safe: use one connection from one thread at a time.
public final class TwofoldConnection {
    public let socketPath: String
    public let timeoutSeconds: Double
    private var fd: Int32
    private var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
    private var sendBuffer: [UInt8] = []
    private let readChunk: UnsafeMutableRawBufferPointer
    private static let readChunkSize = 64 << 10

    /// Connects to the daemon. `timeoutSeconds` bounds the connect and each later send or receive;
    /// `.infinity` waits forever. Throws `ClientError` (`daemonUnreachable` with the errno text).
    public init(socketPath: String, timeoutSeconds: Double = 10) throws {
        guard timeoutSeconds > 0 else { throw ClientError.system("timeout of \(timeoutSeconds) s", errno: EINVAL) }
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, !pathBytes.contains(0) else {
            throw ClientError.daemonUnreachable(path: socketPath, errno: EINVAL)
        }
        guard pathBytes.count < capacity else { throw ClientError.daemonUnreachable(path: socketPath, errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }

        let socketType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = socket(AF_UNIX, socketType, 0)
        guard fd >= 0 else { throw ClientError.system("socket", errno: errno) }

        // A blocking connect waits while the daemon's accept queue is full; SO_SNDTIMEO bounds that wait
        // (Linux then fails with EAGAIN).
        if let timeout = Self.timeval(seconds: timeoutSeconds) {
            var tv = timeout
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var result: Int32
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        } while result < 0 && errno == EINTR
        if result < 0 {
            let code = errno
            Glibc.close(fd)
            if code == EAGAIN || code == EWOULDBLOCK { throw ClientError.timedOut }
            throw ClientError.daemonUnreachable(path: socketPath, errno: code)
        }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) >= 0 else {
            let code = errno
            Glibc.close(fd)
            throw ClientError.system("fcntl(O_NONBLOCK)", errno: code)
        }
        self.fd = fd
        readChunk = .allocate(byteCount: Self.readChunkSize, alignment: 16)
    }

    deinit {
        close()
        readChunk.deallocate()
    }

    /// The socket, or -1 once closed.
    public var fileDescriptor: Int32 { fd }

    /// Whether `close()` has not yet happened (by the caller or after a failure).
    public var isOpen: Bool { fd >= 0 }

    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    /// Sends one message (whole frame) within the timeout.
    public func send(_ message: Message) throws {
        guard fd >= 0 else { throw ClientError.notConnected }
        sendBuffer.removeAll(keepingCapacity: sendBuffer.capacity <= Self.readChunkSize)
        do {
            try FrameCodec.encode(message, into: &sendBuffer)
        } catch let error as ProtocolError {
            throw ClientError(.invalidMessage(error))
        }
        try writeBuffer()
    }

    /// Sends bytes as they are, framed or not (tests: what no well-behaved client sends).
    public func sendRaw(_ bytes: [UInt8]) throws {
        guard fd >= 0 else { throw ClientError.notConnected }
        sendBuffer = bytes
        try writeBuffer()
    }

    private func writeBuffer() throws {
        let deadline = Deadline(seconds: timeoutSeconds)
        var offset = 0
        while offset < sendBuffer.count {
            let sent = sendBuffer.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
                continue
            }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                try wait(for: Int16(POLLOUT), until: deadline)
            case EPIPE, ECONNRESET:
                close()
                throw ClientError.closedByDaemon
            default:
                close()
                throw ClientError.system("send", errno: code)
            }
        }
    }

    /// Receives the next message within the timeout. A `PROTOCOL_ERROR` is returned like any other
    /// message. Throws `closedByDaemon` on EOF and `protocol(_)` on a bad frame (closing the connection).
    public func receive() throws -> Message {
        guard fd >= 0 else { throw ClientError.notConnected }
        let deadline = Deadline(seconds: timeoutSeconds)
        while true {
            do {
                if let message = try decoder.next() { return message }
            } catch let error as ProtocolError {
                close()
                throw ClientError.protocol(error)
            }
            let received = recv(fd, readChunk.baseAddress, readChunk.count, 0)
            if received > 0 {
                decoder.append(UnsafeRawBufferPointer(rebasing: readChunk[0 ..< received]))
                continue
            }
            if received == 0 {
                close()
                throw ClientError.closedByDaemon
            }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                try wait(for: Int16(POLLIN), until: deadline)
            case ECONNRESET:
                close()
                throw ClientError.closedByDaemon
            default:
                close()
                throw ClientError.system("recv", errno: code)
            }
        }
    }

    /// Sends a JSON request and decodes the JSON response. A `PROTOCOL_ERROR` throws
    /// `daemonProtocolError`, any other message `protocol(.unexpectedMessage)`, JSON that does not
    /// decode as `Res` throws `invalidResponse`. The connection stays open after a decoding failure.
    public func request<Req: Encodable, Res: Decodable>(_ req: Req, as: Res.Type) throws -> Res {
        let message: Message
        do {
            message = try ControlCodec.encodeRequest(req)
        } catch let error as ProtocolError {
            throw ClientError(.invalidMessage(error))
        } catch {
            throw ClientError(.invalidRequest("\(error)"))
        }
        try send(message)
        var reply = try receive()
        // A connection refused by a limit gets an ERROR_MSG and VERDICT DENIED in place of a response.
        while case .errorMessage = reply { reply = try receive() }
        switch reply {
        case .verdict(.denied, let reason):
            close()
            throw ClientError(.refused(reason ?? "refused"))
        case .response(let json):
            do {
                return try ControlCodec.decodeJSON(Res.self, from: json)
            } catch {
                throw ClientError(.invalidResponse("\(error)"))
            }
        case .protocolError(let reason):
            close()
            throw ClientError(.daemonProtocolError(reason))
        default:
            close()
            throw ClientError.protocol(.unexpectedMessage("expected RESPONSE, got \(reply.type.name)"))
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes (then closes and throws
    /// `timedOut`). Returns also on POLLHUP/POLLERR: the next send or recv reports those.
    private func wait(for events: Int16, until deadline: Deadline) throws {
        while true {
            guard let milliseconds = deadline.remainingMilliseconds() else {
                close()
                throw ClientError.timedOut
            }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 {
                let code = errno
                if code == EINTR { continue }
                close()
                throw ClientError.system("poll", errno: code)
            }
            // ready == 0: loop to re-check the deadline.
        }
    }

    private static func timeval(seconds: Double) -> timeval? {
        guard seconds.isFinite, seconds < 1e9 else { return nil }
        let whole = seconds.rounded(.down)
        var tv = Glibc.timeval(tv_sec: Int(whole), tv_usec: Int(((seconds - whole) * 1e6).rounded(.up)))
        if tv.tv_usec >= 1_000_000 { tv.tv_sec += 1; tv.tv_usec -= 1_000_000 }
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }
        return tv
    }
}

/// A point on the monotonic clock, or none (wait forever).
struct Deadline {
    private let nanoseconds: UInt64?

    init(seconds: Double) {
        if seconds.isFinite, seconds < 1e9 {
            nanoseconds = Self.now() + UInt64((seconds * 1e9).rounded(.up))
        } else {
            nanoseconds = nil
        }
    }

    /// Milliseconds left, rounded up, -1 for no deadline; nil once passed.
    func remainingMilliseconds() -> Int32? {
        guard let nanoseconds else { return -1 }
        let now = Self.now()
        guard now < nanoseconds else { return nil }
        return Int32(clamping: (nanoseconds - now + 999_999) / 1_000_000)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
