import Foundation
import TwofoldCrypto

#if canImport(Glibc)
import Glibc
#endif

/// Where `twofoldctl backup` writes: a temporary file beside the destination (mode 0600, so the
/// backup is never readable by others, not even for a moment), put in place only once it is
/// complete, checked and on disk. Until then the destination is untouched; on any failure the
/// temporary is removed, so no partial file is ever left.
final class BackupDestination {
    let path: String
    private let force: Bool
    private let temporary: String
    private var fd: Int32
    private var committed = false

    /// Refuses an existing destination unless `force`, then creates the temporary beside it.
    init(path: String, force: Bool) throws(CLIFailure) {
        self.path = path
        self.force = force
        var info = stat()
        if lstat(path, &info) == 0 {
            guard force else {
                throw CLIFailure(ExitStatus.failure, "\(path) exists already: give another --output, or --force to replace it")
            }
            guard (info.st_mode & S_IFMT) == S_IFREG else { throw CLIFailure(ExitStatus.failure, "\(path) exists and is not a regular file") }
        }
        let directory = Self.directory(of: path)
        let name = String(path.split(separator: "/").last ?? "backup")
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        fd = mkstemp(&template)   // mode 0600
        guard fd >= 0 else { throw Self.failure("cannot create a file in \(directory)", errno) }
        temporary = String(cString: template)
    }

    deinit { discard() }

    /// Appends `bytes` to the temporary.
    func write(_ bytes: Data) throws(CLIFailure) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Self.failure("cannot write the backup to \(Self.directory(of: path))", n < 0 ? errno : EIO) }
            done += n
        }
    }

    /// Checks what is on disk against what the daemon said (length and SHA-256), makes it durable
    /// and puts it in place: fsync, rename (without --force, never over a file made meanwhile),
    /// fsync of the directory.
    func commit(size: Int64, sha256: String) throws(CLIFailure) {
        guard fsync(fd) == 0 else { throw Self.failure("cannot write the backup to disk", errno) }
        let (length, digest) = try readBack()
        guard length == size, digest == sha256 else {
            throw CLIFailure(ExitStatus.failure, "the backup received (\(length) bytes, sha256 \(digest)) is not the one twofoldd sent "
                             + "(\(size) bytes, sha256 \(sha256)); nothing was written")
        }
        try place()
        committed = true
        let directory = open(Self.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            Glibc.close(directory)
        }
    }

    /// Removes the temporary unless it was put in place.
    func discard() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        if !committed { unlink(temporary) }
    }

    private func place() throws(CLIFailure) {
        if force {
            guard rename(temporary, path) == 0 else { throw Self.failure("cannot move the backup to \(path)", errno) }
            return
        }
        // link(2) fails if the name exists: a file made since the check above is never replaced.
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { throw CLIFailure(ExitStatus.failure, "\(path) was created meanwhile; nothing was replaced (--force replaces it)") }
            throw Self.failure("cannot create \(path)", errno)
        }
        unlink(temporary)
    }

    /// The temporary's length and SHA-256, read back from the file.
    private func readBack() throws(CLIFailure) -> (Int64, String) {
        do {
            return try SHA256Stream.ofFile(fd)
        } catch {
            throw Self.failure("cannot read the backup back", error.errno)
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func failure(_ what: String, _ code: Int32) -> CLIFailure {
        let reason = code == ENOSPC || code == EDQUOT ? "no space left on the device" : String(cString: strerror(code))
        return CLIFailure(ExitStatus.failure, "\(what): \(reason); nothing was written")
    }
}
