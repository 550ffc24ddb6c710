import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
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
        let pid = try spawn(["/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --config \"$1\"", Paths.twofoldd, daemon.configPath],
                            environment: ["NOTIFY_SOCKET": notifyPath], inheriting: listener, logPath: daemon.logPath)
        defer { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) }
        try notify.waitForReadyDatagram(timeoutSeconds: 60)

        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "the configured path is not bound under activation")
        let connection = try TwofoldConnection(socketPath: activatedPath, timeoutSeconds: 10)
        defer { connection.close() }
        let response = try connection.request(ControlRequest.ping, as: ControlResponse.self)
        #expect(response == .ok)
        #expect(daemon.log.contains("systemd socket"))

        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect((status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0, "clean exit after SIGTERM, status \(status)")
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

/// posix_spawn with `inherited` placed on fd 3 and stdout/stderr appended to `logPath`.
func spawn(_ argv: [String], environment: [String: String], inheriting inherited: Int32, logPath: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, inherited, 3)
    posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let cArgs = argv.map { strdup($0) } + [nil]
    let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
    guard rc == 0 else { throw HarnessError("posix_spawn: \(String(cString: strerror(rc)))") }
    return pid
}

extension NotifyListener {
    /// Waits for READY=1 without a Process handle (for posix_spawn'ed daemons).
    func waitForReadyDatagram(timeoutSeconds: Double) throws {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") { return }
        }
        throw HarnessError("no READY=1 within \(timeoutSeconds) s")
    }
}
