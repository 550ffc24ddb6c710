#if canImport(Glibc)
import Glibc
#endif

/// The directory of a Unix socket's path, made (mode 0755) when it does not exist.
public enum SocketDirectory {
    public static func make<E: Error>(for path: String, error: (String) -> E) throws(E) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw error("cannot create socket directory \(directory): \(String(cString: strerror(errno)))")
        }
    }
}
