#if canImport(Glibc)
import Glibc
#endif
import TwofoldSystemd

/// The service's Unix stream socket and its connections, with plain system calls (the service
/// serves a few connections at once, each on a thread of its own).
enum UnixSocket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ text: String) { description = text }
    }

    /// A listening socket: systemd's (socket activation, as `ListenSource` in twofoldd), else `path`
    /// bound here (a stale socket file replaced; mode 0666: requests are authorized by SO_PEERCRED,
    /// not by the file's mode).
    /// `bound` is the path this process created (to remove at exit), nil for systemd's socket.
    static func listen(path: String, environment: [String: String]) throws -> (fd: Int32, bound: String?) {
        if let fd = SystemdSocketActivation.listeningDescriptor(environment: environment) { return (fd, nil) }
        var address = try socketAddress(path)
        try SocketDirectory.make(for: path, error: Failure.init)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                close(fd)
                throw Failure("\(path) exists and is not a socket")
            }
            unlink(path)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure("cannot listen on \(path): \(reason)")
        }
        guard chmod(path, 0o666) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure("cannot set the mode of \(path): \(reason)")
        }
        return (fd, path)
    }

    static func socketAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure("socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    /// The uid of the peer of a connected socket (SO_PEERCRED), or nil.
    static func peerUID(_ fd: Int32) -> UInt32? {
        // Linux `struct ucred`: pid_t, uid_t, gid_t (Glibc declares it only under _GNU_SOURCE).
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        let soPeerCred: Int32 = 17
        guard getsockopt(fd, SOL_SOCKET, soPeerCred, &credentials, &length) == 0,
              length == socklen_t(MemoryLayout.size(ofValue: credentials)) else { return nil }
        return credentials.1
    }

    enum ReadOutcome {
        case frame([UInt8])
        /// The length prefix announces more than the largest frame.
        case tooLarge(Int)
        /// The peer closed the connection before a whole frame, after this many bytes.
        case truncated(Int)
        /// No whole frame before the deadline.
        case timedOut
        case failed(String)
    }

    /// One frame (u32 big-endian length, then that many bytes), read before `deadline` (monotonic
    /// milliseconds).
    static func readFrame(_ fd: Int32, maxLength: Int, deadline: Int) -> ReadOutcome {
        var prefix = [UInt8](repeating: 0, count: 4)
        if let outcome = readExactly(fd, into: &prefix, deadline: deadline, before: 0) { return outcome }
        let length = Int(prefix[0]) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
        guard length <= maxLength else { return .tooLarge(length) }
        var body = [UInt8](repeating: 0, count: length)
        if let outcome = readExactly(fd, into: &body, deadline: deadline, before: 4) { return outcome }
        return .frame(body)
    }

    /// Fills `buffer`; nil when it did, else what happened instead (`before`: bytes read earlier).
    private static func readExactly(_ fd: Int32, into buffer: inout [UInt8], deadline: Int, before: Int) -> ReadOutcome? {
        var filled = 0
        while filled < buffer.count {
            let left = deadline - CommandRunner.monotonicMillis()
            guard left > 0 else { return .timedOut }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(left))
            if ready < 0 {
                if errno == EINTR { continue }
                return .failed("poll: \(String(cString: strerror(errno)))")
            }
            if ready == 0 { return .timedOut }
            let n = buffer[filled...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                filled += n
            } else if n == 0 {
                return .truncated(before + filled)
            } else if errno != EINTR && errno != EAGAIN {
                return .failed("read: \(String(cString: strerror(errno)))")
            }
        }
        return nil
    }

    /// Writes all of `bytes` (the socket has a send timeout, so a peer that never reads cannot hold
    /// the thread); false if it could not.
    @discardableResult
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return false }
        }
        return true
    }

    /// SO_SNDTIMEO.
    static func setSendTimeout(_ fd: Int32, milliseconds: Int) {
        var value = timeval(tv_sec: milliseconds / 1_000, tv_usec: (milliseconds % 1_000) * 1_000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}
