#if canImport(Glibc)
import Glibc
#endif

/// Runs a channel's command: without a shell (posix_spawn), in a process group of its own, with only
/// the environment it is given, the message on standard input, standard output and error captured
/// together up to a bound (the rest read and dropped, so a chatty command can neither block on a
/// full pipe nor fill memory), and a time limit after which its whole group gets SIGTERM, then
/// SIGKILL 500 ms later. Blocking: each run takes its caller's thread.
public enum CommandRunner {
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Killed at the time limit.
        case timedOut
        /// posix_spawn failed (no such file, not executable...).
        case couldNotStart(String)
    }

    public struct Result: Sendable {
        public var termination: Termination
        /// The first `keep` bytes of standard output and error.
        public var output: [UInt8]
        /// Bytes written beyond them (read and dropped).
        public var discarded: Int
        public var milliseconds: Int
    }

    /// The fixed PATH of every command.
    public static let path = "/usr/sbin:/usr/bin:/sbin:/bin"
    /// Time between SIGTERM and SIGKILL to the group at the time limit.
    public static let killGraceMillis = 500

    public static func run(_ command: ChannelCommand, environment: [String: String], input: [UInt8],
                           timeoutMillis: Int, keep: Int = 4_096) -> Result {
        let start = monotonicMillis()
        var stdinPipe: [Int32] = [-1, -1], outputPipe: [Int32] = [-1, -1]
        // Close-on-exec from the start (pipe2): a command started by another thread meanwhile
        // inherits none of them (it would keep this command's output open after it exits).
        let spawned: Swift.Result<pid_t, SpawnError> = {
            guard cPipe2(&stdinPipe, O_CLOEXEC) == 0 else { return .failure(SpawnError("pipe: \(errnoText())")) }
            guard cPipe2(&outputPipe, O_CLOEXEC) == 0 else {
                stdinPipe.forEach { close($0) }
                return .failure(SpawnError("pipe: \(errnoText())"))
            }
            let result = spawn(command, environment: environment, stdin: stdinPipe[0], output: outputPipe[1])
            close(stdinPipe[0])
            close(outputPipe[1])
            return result
        }()
        let pid: pid_t
        switch spawned {
        case .failure(let error):
            if stdinPipe[1] >= 0 { close(stdinPipe[1]) }
            if outputPipe[0] >= 0 { close(outputPipe[0]) }
            return Result(termination: .couldNotStart(error.text), output: [], discarded: 0, milliseconds: monotonicMillis() - start)
        case .success(let child):
            pid = child
        }

        // The message fits the pipe's buffer (64 KiB; messages are 8 KiB at most), so this write does
        // not wait for the command; non-blocking all the same, and EPIPE (a command that exits
        // without reading) is not an error of ours (SIGPIPE is ignored by the service).
        _ = fcntl(stdinPipe[1], F_SETFL, fcntl(stdinPipe[1], F_GETFL) | O_NONBLOCK)
        var offset = 0
        while offset < input.count {
            let n = input[offset...].withUnsafeBytes { write(stdinPipe[1], $0.baseAddress, $0.count) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(stdinPipe[1])

        let deadline = start + timeoutMillis
        var output: [UInt8] = []
        var discarded = 0
        var outputOpen = true
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let outputFD = outputPipe[0]
        defer { close(outputFD) }
        _ = fcntl(outputFD, F_SETFL, fcntl(outputFD, F_GETFL) | O_NONBLOCK)

        /// Reads what is there now; false at EOF.
        func drain() -> Bool {
            while true {
                let n = read(outputFD, &buffer, buffer.count)
                if n > 0 {
                    let room = max(0, keep - output.count)
                    output.append(contentsOf: buffer[0..<min(n, room)])
                    discarded += n - min(n, room)
                } else if n == 0 {
                    return false
                } else {
                    return errno == EINTR ? true : errno == EAGAIN ? true : false
                }
            }
        }

        // Until the command exits: read its output as it comes, and look at its state at least every
        // 20 ms (a command may exit while a child of its keeps the pipe open).
        while true {
            if exited(pid) { break }
            let left = deadline - monotonicMillis()
            if left <= 0 {
                let termination = killGroup(pid)
                if outputOpen { _ = drain() }
                return Result(termination: termination ?? .timedOut, output: output, discarded: discarded,
                              milliseconds: monotonicMillis() - start)
            }
            if outputOpen {
                var pfd = pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, Int32(min(left, 20))) > 0 { outputOpen = drain() }
            } else {
                var none = pollfd(fd: -1, events: 0, revents: 0)
                _ = poll(&none, 0, Int32(min(left, 20)))
            }
        }
        if outputOpen { _ = drain() }
        let status = reap(pid)
        return Result(termination: status, output: output, discarded: discarded, milliseconds: monotonicMillis() - start)
    }

    /// Whether the child has exited, without reaping it: its pid (and so its process group's id)
    /// stays taken until `reap`, so a signal to the group can never reach a stranger.
    private static func exited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        while true {
            let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
            if rc == 0 { return info.si_signo == SIGCHLD }
            if errno == EINTR { continue }
            return true  // ECHILD: nothing to wait for
        }
    }

    private static func reap(_ pid: pid_t) -> Termination {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 {
            if errno != EINTR { return .exited(-1) }
        }
        if raw & 0x7F == 0 { return .exited((raw >> 8) & 0xFF) }
        return .signaled(raw & 0x7F)
    }

    /// At the time limit: SIGTERM to the group, SIGKILL to it 500 ms later (to what is left of it:
    /// a child of the command may ignore SIGTERM after the command itself is gone), then reaps the
    /// command. Returns nil (it timed out) in every case: an exit during the grace period is still
    /// the time limit's doing.
    private static func killGroup(_ pid: pid_t) -> Termination? {
        kill(-pid, SIGTERM)
        let graceEnd = monotonicMillis() + killGraceMillis
        while !exited(pid) && monotonicMillis() < graceEnd {
            var none = pollfd(fd: -1, events: 0, revents: 0)
            _ = poll(&none, 0, 10)
        }
        kill(-pid, SIGKILL)
        _ = reap(pid)
        return nil
    }

    struct SpawnError: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    private static func spawn(_ command: ChannelCommand, environment: [String: String], stdin: Int32, output: Int32) -> Swift.Result<pid_t, SpawnError> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default dispositions (the service ignores SIGPIPE and handles SIGTERM) and an empty mask,
        // and a process group of its own (pgid = its pid) that the time limit can kill whole.
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = [command.path] + command.arguments
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command.path, &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { return .failure(SpawnError("cannot run \(command.path): \(String(cString: strerror(rc)))")) }
        return .success(pid)
    }

    static func monotonicMillis() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int(now.tv_sec) * 1_000 + Int(now.tv_nsec) / 1_000_000
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// pipe2(2) and accept4(2), which Swift's Glibc module leaves out (they need _GNU_SOURCE): the
/// descriptors are made close-on-exec atomically.
@_silgen_name("pipe2")
func cPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
@_silgen_name("accept4")
func cAccept4(_ fd: Int32, _ address: UnsafeMutableRawPointer?, _ length: UnsafeMutableRawPointer?, _ flags: Int32) -> Int32
