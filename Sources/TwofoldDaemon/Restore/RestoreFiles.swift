import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The file work of a SQLite restore: a private staging directory next to the database (the same
/// file system, so the final rename is atomic), durable copies, and the old database kept aside.
enum RestoreFiles {
    /// Whether something accepts connections on the socket (a daemon, or systemd's socket unit for it).
    static func socketAnswers(_ path: String) throws -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConfigurationError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The directory, made (mode 0700, as the daemon makes its state directory) if missing;
    /// returns whether it was made here (then a failed restore removes it again).
    static func ensureDirectory(_ path: String) throws -> Bool {
        guard !exists(path) else { return false }
        guard mkdir(path, 0o700) == 0 else { throw ConfigurationError("cannot make \(path): \(String(cString: strerror(errno)))") }
        return true
    }

    /// A private directory (mode 0700) inside `directory` for the copy being restored.
    static func makeStaging(in directory: String) throws -> String {
        var template = Array("\(directory)/.restore-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ConfigurationError("cannot make a directory in \(directory): \(String(cString: strerror(errno)))") }
        return String(cString: made)
    }

    /// Copies `source` to `destination` (mode 0600) and syncs it.
    static func copy(_ source: String, to destination: String) throws {
        guard let input = FileHandle(forReadingAtPath: source) else { throw ConfigurationError("cannot read \(source)") }
        defer { try? input.close() }
        let fd = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot write \(destination): \(String(cString: strerror(errno)))") }
        let output = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty { try output.write(contentsOf: chunk) }
        guard fsync(fd) == 0 else { throw ConfigurationError("cannot sync \(destination): \(String(cString: strerror(errno)))") }
    }

    static func sync(_ path: String, directory: Bool = false) throws {
        let fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigurationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ConfigurationError("cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    /// The database and its WAL and shared-memory files renamed to `<name>.before-restore-<time>`
    /// (never deleted); returns the new name of the database, nil when there was none.
    static func keepAside(_ database: String, stamp: String) throws -> String? {
        let aside = "\(database).before-restore-\(stamp)"
        var moved = false
        for suffix in ["", "-wal", "-shm"] where exists(database + suffix) {
            guard rename(database + suffix, aside + suffix) == 0 else {
                throw ConfigurationError("cannot keep \(database + suffix) aside: \(String(cString: strerror(errno)))")
            }
            moved = moved || suffix.isEmpty
        }
        return moved ? aside : nil
    }

    /// Gives `path` the owner of `directory` (the daemon's user, when it runs as one).
    static func matchOwner(_ path: String, of directory: String) {
        var st = stat()
        guard stat(directory, &st) == 0, st.st_uid != getuid() || st.st_gid != getgid() else { return }
        _ = chown(path, st.st_uid, st.st_gid)
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}
