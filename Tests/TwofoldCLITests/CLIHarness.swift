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

typealias Paths = TestPaths
/// The authenticator app stand-in shared by the test targets.
typealias Authenticator = TestAuthenticator

extension TestPaths {
    static var golden: String { root + "/Tests/TwofoldCLITests/Golden" }
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

    /// Runs `twofoldctl arguments...` (as `user`, a TestUser, when given; as root otherwise).
    static func run(_ arguments: [String], input: String? = nil, environment: [String: String] = [:], as user: TestUser? = nil) throws -> CLIResult {
        var argv = [Paths.twofoldctl] + arguments
        if let user { argv = user.setpriv + argv }
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

    init(_ arguments: [String], environment: [String: String] = [:], as user: TestUser? = nil) throws {
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
        if let user { argv = user.setpriv + argv }
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

extension DaemonProcess {
    /// Runs twofoldctl against this daemon (`--socket` added after the subcommand words), as root
    /// or as a test user.
    func ctl(_ arguments: [String], input: String? = nil, as user: TestUser? = nil) throws -> CLIResult {
        try CLI.run(arguments + ["--socket", socketPath], input: input, as: user)
    }

    /// Runs twofoldctl as the test user (TestUser.user): an ordinary, non-root account.
    func ctlAsTestUser(_ arguments: [String], input: String? = nil) throws -> CLIResult {
        try ctl(arguments, input: input, as: try TestUser.user)
    }

    func interactive(_ arguments: [String], as user: TestUser? = nil) throws -> InteractiveCLI {
        try InteractiveCLI(arguments + ["--socket", socketPath], as: user)
    }

}

