#if canImport(Glibc)
import Glibc
#endif

/// A password kept in a file of its own (the database's), read once at start. The file is the only
/// place it may live: never argv, the config file or a URL, which reach logs and `ps`.
enum PasswordFile {
    /// Longest file accepted; a password is a line, not a document.
    static let maximumBytes = 1_024

    /// The first line of `path`, without its newline. The file must be a regular file (not a link)
    /// that group and others can neither read nor write, unless `checkPermissions` is false (a
    /// systemd credential, which systemd makes private to the service). Errors name the file and
    /// the problem, never the content.
    static func firstLine(of path: String, checkPermissions: Bool) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            let err = errno
            throw ConfigurationError(err == ELOOP ? "password file \(path) is a symbolic link"
                                                  : "cannot open password file \(path): \(String(cString: strerror(err)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ConfigurationError("password file \(path) is not a regular file")
        }
        if checkPermissions, info.st_mode & 0o077 != 0 {
            throw ConfigurationError("password file \(path) is accessible to group or others (mode \(String(info.st_mode & 0o777, radix: 8)); use chmod 600)")
        }
        var buffer = [UInt8](repeating: 0, count: maximumBytes + 1)
        defer { for i in buffer.indices { buffer[i] = 0 } }
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigurationError("cannot read password file \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maximumBytes else { throw ConfigurationError("password file \(path) is longer than \(maximumBytes) bytes") }
        var line = buffer[..<total].prefix { $0 != UInt8(ascii: "\n") }
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        guard !line.isEmpty else { throw ConfigurationError("password file \(path) is empty") }
        guard let password = String(validating: line, as: UTF8.self) else {
            throw ConfigurationError("password file \(path) is not UTF-8 text")
        }
        return password
    }
}
