import Foundation
import Glibc
import NIOPosix
import TwofoldProtocol

/// Hands one message to the delivery service (`twofold-deliver`) over its Unix socket and waits
/// for its answer, at most `timeoutMillis`. Blocking I/O on threads of its own, never on an event
/// loop nor on NIO's shared pool (whose few threads look accounts up for logins: a slow gateway must
/// not hold them). Errors are descriptions for the admin's log; none holds the message or the code.
struct DeliveryClient: Sendable {
    let socketPath: String

    /// As many threads as the service runs commands at once by default: a send beyond them waits its turn.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    enum Failure: Error, CustomStringConvertible {
        case unreachable(String)
        case timedOut
        case badAnswer(String)

        var description: String {
            switch self {
            case .unreachable(let why): "delivery service unreachable: \(why)"
            case .timedOut: "delivery service did not answer in time"
            case .badAnswer(let why): "delivery service answered badly: \(why)"
            }
        }
    }

    func send(_ request: DeliveryRequest, timeoutMillis: Int64) async throws -> DeliveryResponse {
        let path = socketPath
        let frame = try DeliveryWire.frame(request)
        // From now, not from when a thread is free: time spent waiting for one counts too.
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(timeoutMillis, 1)) * 1_000_000
        return try await Self.pool.runIfActive { try Self.exchange(frame, path: path, deadline: deadline) }
    }

    /// Whether the service takes connections (for doctor): nil, or why not. Sends nothing.
    func probe() async -> String? {
        let path = socketPath
        do {
            try await Self.pool.runIfActive {
                let fd = try Self.connected(path, deadline: DispatchTime.now().uptimeNanoseconds + 1_000_000_000)
                close(fd)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    private static func exchange(_ frame: [UInt8], path: String, deadline: UInt64) throws -> DeliveryResponse {
        let fd = try connected(path, deadline: deadline)
        defer { close(fd) }
        var offset = 0
        while offset < frame.count {
            try setTimeout(fd, deadline: deadline)
            let n = frame[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw errno == EAGAIN ? Failure.timedOut : Failure.unreachable("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
        let prefix = try read(fd, count: 4, deadline: deadline)
        guard let length = DeliveryWire.length(prefix: prefix) else { throw Failure.badAnswer("frame too large") }
        let body = try read(fd, count: length, deadline: deadline)
        do {
            return try JSONDecoder().decode(DeliveryResponse.self, from: Data(body))
        } catch {
            throw Failure.badAnswer("not a response")
        }
    }

    /// A socket connected to `path`; the caller closes it.
    private static func connected(_ path: String, deadline: UInt64) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.unreachable("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure.unreachable("socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        do {
            try setTimeout(fd, deadline: deadline)
        } catch {
            close(fd)
            throw error
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure.unreachable("\(path): \(reason)")
        }
        return fd
    }

    private static func read(_ fd: Int32, count: Int, deadline: UInt64) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            try setTimeout(fd, deadline: deadline)
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw Failure.timedOut }
            guard n > 0 else { throw Failure.badAnswer(n == 0 ? "closed before answering" : String(cString: strerror(errno))) }
            got += n
        }
        return buffer
    }

    /// The time left to `deadline` as the socket's send and receive timeout.
    private static func setTimeout(_ fd: Int32, deadline: UInt64) throws {
        let now = DispatchTime.now().uptimeNanoseconds
        guard now < deadline else { throw Failure.timedOut }
        let left = deadline - now
        var tv = timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: Int(max(left % 1_000_000_000 / 1_000, 1)))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}
