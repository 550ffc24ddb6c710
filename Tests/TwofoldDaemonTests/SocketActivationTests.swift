import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// systemd socket activation: the daemon takes a bound, listening socket on fd 3.
@Suite("socket activation")
struct SocketActivationTests {
    @Test("twofoldd serves on the socket passed as fd 3 with LISTEN_FDS=1")
    func servesInheritedSocket() throws {
        // The daemon's own config names a different socket path: it must not be bound.
        let daemon = try DaemonProcess(start: false)
        let activatedPath = daemon.directory + "/activated.sock"
        let listener = try bindListening(activatedPath)
        defer { close(listener) }
        let notifyPath = daemon.directory + "/notify-sa.sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }

        // systemd sets LISTEN_PID to the child's pid, known only after fork: a shell sets it and execs.
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        let log = open(daemon.logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(log) }
        let child = try ChildProcess(["/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --config \"$1\"", Paths.twofoldd, daemon.configPath],
                                     environment: environment, fds: [1: log, 2: log, 3: listener])
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { child.isRunning }, logPath: daemon.logPath)

        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "the configured path is not bound under activation")
        let connection = try TwofoldConnection(socketPath: activatedPath, timeoutSeconds: 10)
        defer { connection.close() }
        let response = try connection.request(ControlRequest.ping, as: ControlResponse.self)
        #expect(response == .ok)
        #expect(daemon.log.contains("systemd socket"))

        child.signal(SIGTERM)
        #expect(child.wait() == 0, "clean exit after SIGTERM")
    }
}

/// A bound, listening Unix stream socket, as systemd would create from twofoldd.socket.
func bindListening(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0, listen(fd, 16) == 0 else { throw HarnessError("bind/listen \(path): \(String(cString: strerror(errno)))") }
    return fd
}

