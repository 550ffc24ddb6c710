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

// Test support for the CLI tests: a real twofoldd in a temporary directory (the approach of
// TwofoldDaemonTests' DaemonHarness, which another test target cannot import), and the real
// twofoldctl binary run as a child process (never Foundation's Process).

/// Locations of the repository and of the built products.
enum Paths {
    /// The package root, from this file's path.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The directory holding the test bundle and the built executables.
    static let products: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        precondition(n > 0, "cannot read /proc/self/exe")
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("twofoldctl").path) {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    static var twofoldd: String { products + "/twofoldd" }
    static var twofoldctl: String { products + "/twofoldctl" }
    static var golden: String { root + "/Tests/TwofoldCLITests/Golden" }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh temporary directory with a short path (socket paths are limited to 107 bytes), mode 0755
/// so that `nobody` can reach the socket in it.
func makeTemporaryDirectory(_ prefix: String = "tfctl") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))") }
    chmod(made, 0o755)
    return String(cString: made)
}

/// What a twofoldctl run printed, with standard output and standard error apart.
struct CLIResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }

    /// Standard output decoded as JSON.
    func json<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(stdout.utf8))
    }
}

/// Runs twofoldctl (or any program) with standard output and standard error captured to files and
/// `input` on standard input; waits for it to exit.
enum CLI {
    /// The environment for every run: a fixed width for help texts, UTC, no socket from the caller's environment.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ChildProcess.currentEnvironment()
        env["COLUMNS"] = "100"
        env["TZ"] = "UTC"
        env["LC_ALL"] = "C.UTF-8"
        env.removeValue(forKey: "TWOFOLD_SOCKET")
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `twofoldctl arguments...` (as `nobody` with `asNobody`).
    static func run(_ arguments: [String], input: String? = nil, environment: [String: String] = [:], asNobody: Bool = false) throws -> CLIResult {
        var argv = [Paths.twofoldctl] + arguments
        if asNobody {
            argv = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + argv
        }
        return try runProgram(argv, input: input, environment: Self.environment(environment))
    }

    static func runProgram(_ argv: [String], input: String? = nil, environment: [String: String]? = nil) throws -> CLIResult {
        let directory = try makeTemporaryDirectory("tfrun")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inPath = directory + "/in", outPath = directory + "/out", errPath = directory + "/err"
        try (input ?? "").write(toFile: inPath, atomically: true, encoding: .utf8)
        let inFd = open(inPath, O_RDONLY | O_CLOEXEC)
        let outFd = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let errFd = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard inFd >= 0, outFd >= 0, errFd >= 0 else { throw HarnessError("cannot open capture files in \(directory)") }
        let child: ChildProcess
        do {
            child = try ChildProcess(argv, environment: environment ?? CLI.environment(), fds: [0: inFd, 1: outFd, 2: errFd])
        } catch {
            [inFd, outFd, errFd].forEach { close($0) }
            throw error
        }
        [inFd, outFd, errFd].forEach { close($0) }
        let status = child.wait()
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return CLIResult(status: status, stdout: stdout, stderr: stderr)
    }
}

/// An interactive twofoldctl: standard input and output are pipes the test reads and writes while
/// the command runs (to type a code computed from the secret the command printed).
final class InteractiveCLI {
    private let child: ChildProcess
    private var input: Int32
    private let output: Int32
    private let errPath: String
    private let directory: String
    private(set) var stdout = ""
    private var buffer: [UInt8] = []

    init(_ arguments: [String], environment: [String: String] = [:], asNobody: Bool = false) throws {
        directory = try makeTemporaryDirectory("tfint")
        errPath = directory + "/err"
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0]
        // Close-on-exec from the start, so that children started at the same time by other tests
        // do not inherit an end (which would keep the pipe open after this child exits).
        // (Glibc's module does not export pipe2; a socket pair can be made close-on-exec atomically.)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &inPipe) == 0, socketpair(AF_UNIX, type, 0, &outPipe) == 0 else {
            throw HarnessError("socketpair failed")
        }
        let errFd = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var argv = [Paths.twofoldctl] + arguments
        if asNobody { argv = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + argv }
        child = try ChildProcess(argv, environment: CLI.environment(environment), fds: [0: inPipe[0], 1: outPipe[1], 2: errFd])
        close(inPipe[0]); close(outPipe[1]); close(errFd)
        input = inPipe[1]
        output = outPipe[0]
    }

    deinit {
        if input >= 0 { close(input) }
        close(output)
        child.signal(SIGKILL)
        child.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Reads standard output until `predicate` holds for all of it so far, or throws after `timeout` seconds.
    @discardableResult
    func read(until predicate: (String) -> Bool, timeout: Double = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while !predicate(stdout) {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("timed out waiting for output; so far:\n\(stdout)\n--- stderr\n\(stderr)") }
            var pfd = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000)) > 0 else { continue }
            let n = Glibc.read(output, &chunk, chunk.count)
            if n <= 0 { throw HarnessError("output ended before the expected text; so far:\n\(stdout)\n--- stderr\n\(stderr)") }
            buffer += chunk[0..<n]
            stdout = String(decoding: buffer, as: UTF8.self)
        }
        return stdout
    }

    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
    }

    /// Closes standard input, reads the rest, waits for the exit.
    func finish() -> CLIResult {
        if input >= 0 { close(input); input = -1 }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = Glibc.read(output, &chunk, chunk.count)
            if n > 0 { buffer += chunk[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        stdout = String(decoding: buffer, as: UTF8.self)
        let status = child.wait()
        return CLIResult(status: status, stdout: stdout, stderr: stderr)
    }

    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }
}

/// A real `twofoldd` on a socket in a temporary directory; ready when it sends READY=1 to NOTIFY_SOCKET.
final class DaemonProcess: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let configPath: String
    let logPath: String
    private(set) var process: ChildProcess?

    init(extraConfig: String = "") throws {
        directory = try makeTemporaryDirectory()
        socketPath = directory + "/twofold.sock"
        configPath = directory + "/twofoldd.conf"
        logPath = directory + "/daemon.log"
        let config = """
        socket = \(socketPath)
        state_directory = \(directory)/state
        log_level = debug
        throttle_delay_ms = 0
        issuer = TwofoldTest
        \(extraConfig)
        """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func start() throws {
        let notifyPath = directory + "/notify.\(UInt32.random(in: 0...UInt32.max)).sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(log) }
        let process = try ChildProcess([Paths.twofoldd, "--config", configPath], environment: environment, fds: [1: log, 2: log])
        self.process = process
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { process.isRunning }, logPath: logPath)
    }

    /// SIGTERM and wait.
    @discardableResult
    func stop() -> Int32 {
        guard let process else { return 0 }
        process.signal(SIGTERM)
        return process.wait()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs twofoldctl against this daemon (`--socket` added after the subcommand words).
    func ctl(_ arguments: [String], input: String? = nil, asNobody: Bool = false) throws -> CLIResult {
        try CLI.run(arguments + ["--socket", socketPath], input: input, asNobody: asNobody)
    }

    func interactive(_ arguments: [String], asNobody: Bool = false) throws -> InteractiveCLI {
        try InteractiveCLI(arguments + ["--socket", socketPath], asNobody: asNobody)
    }

    /// A control request straight over the socket (to set up or check state independently of the CLI).
    func control(_ request: ControlRequest) throws -> ControlResponse {
        let connection = try TwofoldConnection(socketPath: socketPath, timeoutSeconds: 10)
        defer { connection.close() }
        return try connection.request(request, as: ControlResponse.self)
    }

    func status(_ user: String) throws -> UserStatus {
        let response = try control(.status(user: user))
        guard case .status(let status) = response else { throw HarnessError("status: \(response)") }
        return status
    }
}

/// An authenticator app: codes for a base32 secret.
struct Authenticator: Sendable {
    var secret: SecretBytes
    var parameters = OTPParameters()

    init(base32: String, parameters: OTPParameters = OTPParameters()) throws {
        secret = SecretBytes(try Base32.decode(base32))
        self.parameters = parameters
    }

    init(secret: SecretBytes, parameters: OTPParameters = OTPParameters()) {
        self.secret = secret
        self.parameters = parameters
    }

    static func random() throws -> Authenticator {
        Authenticator(secret: try OTPSecret.generate())
    }

    var base32: String { Base32.encode(secret.copyBytes()) }

    /// The code for `at` (default now) plus `offset` steps.
    func code(offset: Int = 0, at date: Date = Date()) -> String {
        let time = Int64(date.timeIntervalSince1970) + Int64(offset * parameters.period)
        return OneTimeCode.totp(secret: secret, unixTime: time, parameters: parameters)
    }

    /// A code that matches no step near now.
    func wrongCode() -> String {
        let valid = Set((-12...12).map { code(offset: $0) })
        var candidate = 0
        while valid.contains(String(format: "%06d", candidate)) { candidate += 1 }
        return String(format: "%06d", candidate)
    }

    func uri(account: String, issuer: String = "Imported") -> String {
        OTPAuthURI(issuer: issuer, account: account, secret: secret, parameters: parameters).uriString()
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

    func waitForReady(timeoutSeconds: Double, isRunning: () -> Bool, logPath: String) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 250) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") { return }
            } else if !isRunning() {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw HarnessError("twofoldd exited before it was ready:\n\(log)")
            }
        }
        throw HarnessError("twofoldd did not report READY=1 within \(timeoutSeconds) s")
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
