#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs a program (argv, no shell) with standard input from /dev/null and collects its standard
/// output and standard error; kills it after `timeout` seconds.
enum Subprocess {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut = false
    }

    static func run(_ argv: [String], timeout: Double = 20) throws(CLIFailure) -> Output {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0 else { throw CLIFailure(ExitStatus.failure, "pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&errPipe) == 0 else {
            outPipe.forEach { close($0) }
            throw CLIFailure(ExitStatus.failure, "pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw CLIFailure(ExitStatus.failure, "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        let (stdout, stderr, timedOut) = collect(outPipe[0], errPipe[0], pid: pid, timeout: timeout)
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return Output(status: status, stdout: stdout, stderr: stderr, timedOut: timedOut)
    }

    /// Reads both pipes until they close (or the time is up: then the child is killed).
    private static func collect(_ out: Int32, _ err: Int32, pid: pid_t, timeout: Double) -> (String, String, Bool) {
        var buffers: [Int32: [UInt8]] = [out: [], err: []]
        var open = [out, err]
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + timeout
        var timedOut = false
        while !open.isEmpty {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = end - (Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
            if left <= 0 { timedOut = true; kill(pid, SIGKILL); break }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000))
            if ready < 0 && errno != EINTR { break }
            for pfd in fds where pfd.revents != 0 {
                let n = read(pfd.fd, &chunk, chunk.count)
                if n > 0 { buffers[pfd.fd]?.append(contentsOf: chunk[0..<n]) } else if n == 0 || errno != EINTR {
                    open.removeAll { $0 == pfd.fd }
                }
            }
        }
        close(out)
        close(err)
        return (String(decoding: buffers[out] ?? [], as: UTF8.self), String(decoding: buffers[err] ?? [], as: UTF8.self), timedOut)
    }
}
