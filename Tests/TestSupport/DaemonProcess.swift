import Foundation
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Locations of the repository and of the built products.
public enum TestPaths {
    /// The package root, from this file's path.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The directory holding the test bundle and the built executables (`twofoldd`, `twofoldctl`, ...).
    public static let products: String = {
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

    public static var twofoldd: String { products + "/twofoldd" }
    public static var twofoldctl: String { products + "/twofoldctl" }
}

/// A failure of the test harness itself (not of the code under test).
public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh temporary directory with a short path (Unix socket paths are limited to 107 bytes),
/// mode 0755 so that the test users (TestUser) can reach a socket in it.
public func makeTemporaryDirectory(_ prefix: String = "tf") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))") }
    chmod(made, 0o755)
    return String(cString: made)
}

/// A real `twofoldd` on a socket in a temporary directory. Readiness is the `READY=1` datagram the
/// daemon sends to `NOTIFY_SOCKET`: no sleeping, no polling of the socket.
public final class DaemonProcess: @unchecked Sendable {
    public let directory: String
    public let socketPath: String
    public let configPath: String
    public let logPath: String
    public private(set) var process: ChildProcess?
    /// The daemon's NOTIFY_SOCKET, kept open while it runs (READY=1 after start and after each reload).
    private var notify: NotifyListener?

    /// Writes a config (test defaults plus `extraConfig` lines) and, unless `start` is false, starts the daemon.
    /// The tests' default throttle delay is 0 (no waiting after a failure); `throttleDelayMillis` sets one.
    public init(extraConfig: String = "", throttleDelayMillis: Int = 0, start: Bool = true) throws {
        directory = try makeTemporaryDirectory()
        socketPath = directory + "/twofold.sock"
        configPath = directory + "/twofoldd.conf"
        logPath = directory + "/daemon.log"
        let config = """
        socket = \(socketPath)
        state_directory = \(directory)/state
        log_level = debug
        throttle_delay_ms = \(throttleDelayMillis)
        issuer = TwofoldTest
        \(extraConfig)
        """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    deinit {
        kill()
        notify?.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The state directory of the default config: the key and, on SQLite, the database.
    public var stateDirectory: String { directory + "/state" }

    /// The SQLite database in the state directory.
    public var sqlitePath: String { stateDirectory + "/twofold.sqlite" }

    /// Starts (or restarts) the daemon and waits for READY=1. `prefix` runs it under another
    /// command (`unshare ... --`, `setpriv ... --`), which must exec twofoldd in the end.
    /// `waitForReady` false returns once the process is spawned (a test that kills it while it starts).
    public func start(extraEnvironment: [String: String] = [:], prefix: [String] = [], waitForReady: Bool = true) throws {
        let notifyPath = directory + "/notify.\(UInt32.random(in: 0...UInt32.max)).sock"
        self.notify?.close()
        let notify = try NotifyListener(path: notifyPath)
        self.notify = notify
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        for (k, v) in extraEnvironment { environment[k] = v }
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(log) }
        let process = try ChildProcess(prefix + [TestPaths.twofoldd, "--config", configPath], environment: environment, fds: [1: log, 2: log])
        self.process = process
        guard waitForReady else { return }
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { process.isRunning }, logPath: logPath)
    }

    /// SIGHUP, then waits for the READY=1 that ends the reload; returns its STATUS= text (whether
    /// the new file is in force or was refused).
    @discardableResult
    public func reload() throws -> String {
        guard let process, let notify else { throw HarnessError("the daemon is not running") }
        process.signal(SIGHUP)
        let message = try notify.waitForReady(timeoutSeconds: 30, isRunning: { process.isRunning }, logPath: logPath)
        return message.split(separator: "\n").first { $0.hasPrefix("STATUS=") }.map { String($0.dropFirst(7)) } ?? ""
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        guard let process else { return 0 }
        process.signal(SIGTERM)
        return process.wait()
    }

    /// SIGKILL and wait: a crash.
    public func kill() {
        guard let process else { return }
        process.signal(SIGKILL)
        process.wait()
    }

    /// Everything the daemon logged so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func connect(timeout: Double = 10) throws -> TwofoldConnection {
        try TwofoldConnection(socketPath: socketPath, timeoutSeconds: timeout)
    }

    /// One control request over the socket, as root.
    public func control(_ request: ControlRequest) throws -> ControlResponse {
        let connection = try connect()
        defer { connection.close() }
        return try connection.request(request, as: ControlResponse.self)
    }

    public func status(_ user: String) throws -> UserStatus {
        let response = try control(.status(user: user))
        guard case .status(let status) = response else { throw HarnessError("status: \(response)") }
        return status
    }
}

/// An authenticator app in a test: codes for a secret, as the phone would show them.
public struct TestAuthenticator: Sendable {
    public var secret: SecretBytes
    public var parameters: OTPParameters

    public init(secret: SecretBytes, parameters: OTPParameters = OTPParameters()) {
        self.secret = secret
        self.parameters = parameters
    }

    public init(base32: String, parameters: OTPParameters = OTPParameters()) throws {
        var raw = try Base32.decode(base32)
        defer { Crypto.wipe(&raw) }
        self.init(secret: SecretBytes(raw), parameters: parameters)
    }

    public static func random() throws -> TestAuthenticator { TestAuthenticator(secret: try OTPSecret.generate()) }

    public var base32: String {
        var raw = secret.copyBytes()
        defer { Crypto.wipe(&raw) }
        return Base32.encode(raw)
    }

    /// The code for `date` (default now) plus `offset` steps.
    public func code(offset: Int = 0, at date: Date = Date()) -> String {
        let time = Int64(date.timeIntervalSince1970) + Int64(offset * parameters.period)
        return OneTimeCode.totp(secret: secret, unixTime: time, parameters: parameters)
    }

    /// A code that matches no step near now.
    public func wrongCode() -> String {
        let valid = Set((-12...12).map { code(offset: $0) })
        var candidate = 0
        while valid.contains(String(format: "%0\(parameters.digits)d", candidate)) { candidate += 1 }
        return String(format: "%0\(parameters.digits)d", candidate)
    }

    public func uri(account: String, issuer: String = "Imported") -> String {
        OTPAuthURI(issuer: issuer, account: account, secret: secret, parameters: parameters).uriString()
    }
}

/// A datagram socket standing in for systemd's notify socket.
public final class NotifyListener {
    public let fd: Int32
    public let path: String

    public init(path: String) throws {
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

    /// Blocks until a datagram containing READY=1 arrives (poll with a deadline); the process
    /// exiting first ends the wait with its log.
    @discardableResult
    public func waitForReady(timeoutSeconds: Double, isRunning: () -> Bool, logPath: String) throws -> String {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 250) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                let message = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
                if message.split(separator: "\n").contains("READY=1") { return message }
            } else if !isRunning() {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw HarnessError("the process exited before it was ready:\n\(log)")
            }
        }
        throw HarnessError("no READY=1 within \(timeoutSeconds) s")
    }

    public func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
