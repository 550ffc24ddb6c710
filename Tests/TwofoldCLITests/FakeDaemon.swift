import Foundation
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for twofoldd that answers control requests with canned responses and records what it
/// was asked: for CLI output whose daemon side is tested elsewhere (or not runnable here). It
/// accepts any number of connections (twofoldctl reconnects after a prompt), each on its own thread.
final class FakeDaemon: @unchecked Sendable {
    let directory: String
    let socketPath: String
    private let listenFD: Int32
    /// What the threads share (not the FakeDaemon itself, so that its deinit stops them).
    private let state: State

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var received: [ControlRequest] = []
        let answer: @Sendable (ControlRequest) -> ControlResponse
        init(_ answer: @escaping @Sendable (ControlRequest) -> ControlResponse) { self.answer = answer }
    }

    /// `answer` gives the response to each request (called on the connection's thread).
    init(_ answer: @escaping @Sendable (ControlRequest) -> ControlResponse) throws {
        directory = try makeTemporaryDirectory("tffake")
        socketPath = directory + "/twofold.sock"
        let state = State(answer)
        self.state = state
        listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listenFD >= 0 else { throw HarnessError("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listenFD, 16) == 0 else {
            close(listenFD)
            throw HarnessError("cannot listen at \(socketPath): \(String(cString: strerror(errno)))")
        }
        // The test users connect too.
        chmod(socketPath, 0o666)
        let fd = listenFD
        Thread.detachNewThread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Thread.detachNewThread { Self.serve(connection, state) }
            }
        }
    }

    deinit {
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The requests received so far, in order.
    var requests: [ControlRequest] { state.lock.withLock { state.received } }

    /// Runs twofoldctl against this fake (`--socket` added after the subcommand words).
    func ctl(_ arguments: [String], input: String? = nil, as user: TestUser? = nil) throws -> CLIResult {
        try CLI.run(arguments + ["--socket", socketPath], input: input, as: user)
    }

    private static func serve(_ fd: Int32, _ state: State) {
        defer { close(fd) }
        var decoder = FrameDecoder()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            do {
                while let message = try decoder.next() {
                    let request = try ControlCodec.decode(ControlRequest.self, from: message)
                    state.lock.withLock { state.received.append(request) }
                    let frame = try FrameCodec.encode(try ControlCodec.encodeResponse(state.answer(request)))
                    var offset = 0
                    while offset < frame.count {
                        let sent = frame.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                        if sent < 0 && errno == EINTR { continue }
                        if sent <= 0 { return }
                        offset += sent
                    }
                }
            } catch {
                return
            }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return }
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            decoder.append(chunk[0 ..< count])
        }
    }
}
