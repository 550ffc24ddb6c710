#if canImport(Glibc)
import Glibc
#endif

/// The daemon's guard against running in a user namespace.
///
/// Every request is authorized from SO_PEERCRED, which the kernel translates into the *receiver's*
/// user namespace. Inside a namespace that maps only some ids (systemd's `PrivateUsers=yes` maps
/// root and the service user), every other caller reads as the overflow uid 65534: each user's
/// `twofoldctl` would act on `nobody`, screen lockers would always be refused, the admin group
/// would never match and the audit would record 65534 for everyone. So the daemon starts only
/// when its uid and gid maps are the initial namespace's identity map.
public enum UserNamespace {
    /// The one line of /proc/self/uid_map (and gid_map) in the initial user namespace: ids 0 to
    /// 2³²−2 map to themselves.
    public static let identity: [String] = ["0", "0", "4294967295"]

    /// True if `mapText` (the contents of a uid_map or gid_map) is exactly the identity map: one
    /// line of three whitespace-separated fields `0 0 4294967295`.
    public static func isIdentity(_ mapText: String) -> Bool {
        let lines = mapText.split(whereSeparator: { $0 == "\n" }).filter { !$0.allSatisfy { $0 == " " || $0 == "\t" } }
        guard lines.count == 1 else { return false }
        return lines[0].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) == identity
    }

    /// The map in one line for a message: fields single-spaced, lines joined with "; ".
    static func summary(_ mapText: String) -> String {
        let lines = mapText.split(whereSeparator: { $0 == "\n" })
            .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
            .filter { !$0.isEmpty }
        return lines.isEmpty ? "empty" : lines.joined(separator: "; ")
    }

    /// Throws a `ConfigurationError` naming the cause unless both maps are the identity map.
    /// `read` returns a file's contents or throws (injectable for tests).
    public static func requireInitialNamespace(
        read: (String) throws -> String = UserNamespace.readProcFile
    ) throws {
        for (name, path) in [("uid_map", "/proc/self/uid_map"), ("gid_map", "/proc/self/gid_map")] {
            let shown: String
            do {
                let text = try read(path)
                if isIdentity(text) { continue }
                shown = summary(text)
            } catch {
                shown = "unreadable: \(error)"
            }
            throw ConfigurationError(
                "twofoldd is running in a user namespace (\(name): \(shown)): peer credentials would not be the callers' real uids, "
                + "so every request would be authorized as the wrong user. Remove PrivateUsers= from the unit "
                + "(or run twofoldd outside the namespace).")
        }
    }

    /// Reads a small /proc file (a map has at most 340 lines) with plain system calls.
    public static func readProcFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigurationError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ConfigurationError("\(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > 65_536 { throw ConfigurationError("\(path): longer than 64 KiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
