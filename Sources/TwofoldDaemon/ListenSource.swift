#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import TwofoldSystemd

/// Where a server takes its listening Unix socket from.
public enum ListenSource: Sendable, Equatable, CustomStringConvertible {
    /// Bind this path (a stale socket file is replaced; the file is made connectable by everyone:
    /// authorization is by SO_PEERCRED, not by file mode).
    case path(String)
    /// A bound, listening socket handed over by systemd (LISTEN_FDS).
    case descriptor(Int32)

    /// systemd's socket when it passed one, else `path`.
    static func from(environment: [String: String], path: String) -> ListenSource {
        SystemdSocketActivation.listeningDescriptor(environment: environment).map { .descriptor($0) } ?? .path(path)
    }

    public var description: String {
        switch self {
        case .path(let p): p
        case .descriptor(let fd): "systemd socket (fd \(fd))"
        }
    }

    /// The listening channel of `bootstrap` on this source.
    func bind(_ bootstrap: ServerBootstrap) async throws -> Channel {
        switch self {
        case .path(let path):
            try SocketDirectory.make(for: path, error: ConfigurationError.init)
            let server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            guard chmod(path, 0o666) == 0 else {
                server.close(promise: nil)
                throw ConfigurationError("cannot set the mode of \(path): \(String(cString: strerror(errno)))")
            }
            return server
        case .descriptor(let fd):
            return try await bootstrap.withBoundSocket(fd).get()
        }
    }
}
