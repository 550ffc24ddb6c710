import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Locations of the repository and of the built products.
enum Paths {
    /// The package root, from this file's path.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The directory holding the test bundle and the built executables (`twofoldd`, ...).
    static let products: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        precondition(n > 0, "cannot read /proc/self/exe")
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The runner may live inside TwofoldPackageTests.xctest/…; walk up to the folder with twofoldd.
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("twofoldd").path) {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    static var twofoldd: String { products + "/twofoldd" }
}

/// A fresh temporary directory with a short path (Unix socket paths are limited to 107 bytes).
func makeTemporaryDirectory(_ prefix: String = "tf") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))") }
    chmod(made, 0o755)
    return String(cString: made)
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A real `twofoldd` process on a socket in a temporary directory. Readiness is the `READY=1`
/// datagram the daemon sends to `NOTIFY_SOCKET`: no sleeping, no polling.
final class DaemonProcess: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let configPath: String
    let logPath: String
    private(set) var process: ChildProcess?

    /// Writes a config (defaults for tests plus `extraConfig`) and starts the daemon.
    init(extraConfig: String = "", directory: String? = nil, start: Bool = true) throws {
        self.directory = try directory ?? makeTemporaryDirectory()
        socketPath = self.directory + "/twofold.sock"
        configPath = self.directory + "/twofoldd.conf"
        logPath = self.directory + "/daemon.log"
        let config = """
        socket = \(socketPath)
        state_directory = \(self.directory)/state
        log_level = debug
        throttle_delay_ms = 0
        \(extraConfig)
        """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    /// Starts (or restarts) the daemon and waits for READY=1.
    func start(extraEnvironment: [String: String] = [:]) throws {
        let notifyPath = directory + "/notify.\(UInt32.random(in: 0...UInt32.max)).sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        for (k, v) in extraEnvironment { environment[k] = v }
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(log) }
        let process = try ChildProcess([Paths.twofoldd, "--config", configPath], environment: environment, fds: [1: log, 2: log])
        self.process = process
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { process.isRunning }, logPath: logPath)
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard let process else { return 0 }
        process.signal(SIGTERM)
        return process.wait()
    }

    /// SIGKILL and wait: a crash.
    func kill() {
        guard let process else { return }
        process.signal(SIGKILL)
        process.wait()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    // MARK: - Client conveniences

    func connect(timeout: Double = 10) throws -> TwofoldConnection {
        try TwofoldConnection(socketPath: socketPath, timeoutSeconds: timeout)
    }

    func control(_ request: ControlRequest) throws -> ControlResponse {
        let connection = try connect()
        defer { connection.close() }
        return try connection.request(request, as: ControlResponse.self)
    }

    /// Provisions `user` with a fresh random TOTP secret through the admin import request.
    func provision(_ user: String, parameters: OTPParameters = OTPParameters()) throws -> TestAccount {
        let secret = try OTPSecret.generate()
        let uri = OTPAuthURI(issuer: "Test", account: user, secret: secret, parameters: parameters).uriString()
        let response = try control(.importEnrollment(user: user, source: .uri(uri)))
        guard response == .imported(recoveryCodes: 0) else { throw HarnessError("import failed: \(response)") }
        return TestAccount(user: user, secret: secret, parameters: parameters)
    }

    /// Runs a login dialog answering every prompt with `answer`.
    func login(_ user: String, answer: String?, service: String = "sshd") throws -> LoginDialog.Outcome {
        try LoginDialog.run(socketPath: socketPath, start: AuthStart(user: user, service: service, rhost: "127.0.0.1", tty: "ssh"),
                            timeoutSeconds: 10) { _, _ in answer }
    }
}

/// A provisioned user and its secret, to compute codes as the phone would.
struct TestAccount: Sendable {
    var user: String
    var secret: SecretBytes
    var parameters: OTPParameters

    /// The code for now (plus `offset` steps).
    func code(offset: Int = 0) -> String {
        let now = Int64(Date().timeIntervalSince1970) + Int64(offset * parameters.period)
        return OneTimeCode.totp(secret: secret, unixTime: now, parameters: parameters)
    }

    /// A code that is certainly wrong for every step of the window.
    func wrongCode() -> String {
        let valid = Set((-3...3).map { code(offset: $0) })
        var candidate = 0
        while valid.contains(String(format: "%06d", candidate)) { candidate += 1 }
        return String(format: "%06d", candidate)
    }
}

/// A datagram socket standing in for systemd's notify socket.
final class NotifyListener {
    let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw HarnessError("bind \(path): \(String(cString: strerror(errno)))") }
    }

    /// Blocks until a datagram containing READY=1 arrives (poll with a deadline; the daemon dying ends the wait).
    func waitForReady(timeoutSeconds: Double, isRunning: () -> Bool, logPath: String) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 250)
            if ready > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") { return }
            } else if !isRunning() {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw HarnessError("the process exited before it was ready:\n\(log)")
            }
        }
        throw HarnessError("twofoldd did not report READY=1 within \(timeoutSeconds) s")
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}

/// Raw socket helpers for sending what no well-behaved client sends.
enum RawSocket {
    static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw HarnessError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until EOF or until `timeoutSeconds` pass; returns the bytes and whether EOF was seen.
    static func readToEOF(_ fd: Int32, timeoutSeconds: Double) -> (bytes: [UInt8], eof: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, remaining) > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (out, true) }
            out.append(contentsOf: buffer[0..<n])
        }
        return (out, false)
    }
}
