import Foundation
import Glibc
import TwofoldProtocol

/// A tiny Unix-socket server on a background thread: accepts one connection and runs `handler` on it.
final class TestServer: @unchecked Sendable {
    let path: String
    private let listenFD: Int32
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var failures: [String] = []

    init(_ handler: @escaping @Sendable (ServerConnection) throws -> Void) throws {
        path = "/tmp/twofold-proto-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).sock"
        listenFD = try Self.listen(at: path)
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            let fd = accept(listenFD, nil, nil)
            guard fd >= 0 else { record("accept: \(String(cString: strerror(errno)))"); return }
            defer { Glibc.close(fd) }
            do { try handler(ServerConnection(fd: fd)) } catch { record("handler: \(error)") }
        }
    }

    /// Waits for the handler to end, removes the socket, and returns what went wrong on the server side.
    func finish(timeoutSeconds: Double = 10) -> [String] {
        if finished.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            shutdown(listenFD, Int32(SHUT_RDWR))
            record("server did not finish within \(timeoutSeconds) s")
        }
        Glibc.close(listenFD)
        unlink(path)
        return lock.withLock { failures }
    }

    func record(_ failure: String) {
        lock.withLock { failures.append(failure) }
    }

    static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 8) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(.init(rawValue: code)!)
        }
        return fd
    }
}

/// The server's side of one connection, blocking.
final class ServerConnection {
    let fd: Int32
    private var decoder = FrameDecoder()

    init(fd: Int32) {
        self.fd = fd
    }

    /// The next message, nil on EOF.
    func receive() throws -> Message? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let message = try decoder.next() { return message }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return nil }
            if count < 0 {
                if errno == EINTR { continue }
                throw POSIXError(.init(rawValue: errno)!)
            }
            decoder.append(chunk[0 ..< count])
        }
    }

    func send(_ message: Message) throws {
        sendRaw(try FrameCodec.encode(message))
    }

    func sendRaw(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Blocks until the peer closes (EOF), discarding anything it sends.
    func drainUntilEOF() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno != EINTR) { return }
        }
    }
}
