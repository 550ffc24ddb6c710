import Foundation
import Logging
import NIOPosix
import Synchronization
import TwofoldCrypto
import TwofoldStore

#if canImport(Glibc)
import Glibc
#endif

/// The copy behind one connection's backup, made in the state directory (the one place the
/// sandbox lets twofoldd write). Once it is taken and opened its name is removed: the bytes live as
/// long as the descriptor, so the space comes back when the connection ends, whatever ends it (the
/// client's close, a timeout, even SIGKILL of the daemon). Only a daemon that dies while copying
/// leaves a file behind, which the next start removes (`removeStale`).
final class BackupFile: Sendable {
    static let namePrefix = "backup-in-progress-"

    let id: String
    let size: Int64
    let sha256: String
    let snapshot: BackupSnapshot
    private struct Open {
        var fd: Int32
        /// The end of the bytes served from the start without a gap: the client read it all when it is `size`.
        var served: Int64 = 0
    }
    private let state: Mutex<Open?>
    /// Gives back the daemon's slot for a backup in progress (`BackupSlots`).
    private let release: @Sendable () -> Void

    private init(id: String, fd: Int32, size: Int64, sha256: String, snapshot: BackupSnapshot, release: @escaping @Sendable () -> Void) {
        self.id = id
        self.size = size
        self.sha256 = sha256
        self.snapshot = snapshot
        self.state = Mutex(Open(fd: fd))
        self.release = release
    }

    deinit { _ = close() }

    static func path(in directory: String, id: String) -> String { directory + "/" + namePrefix + id + ".sqlite" }

    /// Has `store` copy itself into the state directory, then opens the copy, removes its name and
    /// hashes it. `release` is called once the file is closed (not when this throws).
    static func take(from store: any OnlineBackup, directory: String, release: @escaping @Sendable () -> Void,
                     manifest: @escaping @Sendable () -> BackupManifest) async throws(BackupError) -> BackupFile {
        guard let random = try? Crypto.randomBytes(8) else { throw BackupError.failed("the system random generator failed") }
        let id = Crypto.hex(random)
        let path = Self.path(in: directory, id: id)
        let snapshot = try await store.backup(to: path, manifest: manifest)
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        let code = errno
        unlink(path)
        guard fd >= 0 else { throw BackupError.failed("cannot open the copy \(path): \(String(cString: strerror(code)))") }
        do {
            let (size, digest) = try await NIOThreadPool.singleton.runIfActive { try Self.hash(fd) }
            return BackupFile(id: id, fd: fd, size: size, sha256: digest, snapshot: snapshot, release: release)
        } catch {
            Glibc.close(fd)
            throw BackupError.failed("cannot read the copy back: \(error)")
        }
    }

    /// The file's length and SHA-256, read from its start.
    private static func hash(_ fd: Int32) throws -> (Int64, String) {
        do {
            return try SHA256Stream.ofFile(fd)
        } catch {
            throw BackupError.failed(String(cString: strerror(error.errno)))
        }
    }

    /// Up to `count` bytes from `offset` (none at the end).
    func read(from offset: Int64, count: Int) async throws -> [UInt8] {
        let wanted = Int(max(0, min(Int64(count), size - offset)))
        return try await NIOThreadPool.singleton.runIfActive {
            try self.state.withLock { slot throws -> [UInt8] in
                guard var current = slot else { throw BackupError.failed("the backup was ended") }
                var bytes = [UInt8](repeating: 0, count: wanted)
                var done = 0
                while done < wanted {
                    let n = bytes.withUnsafeMutableBytes { pread(current.fd, $0.baseAddress! + done, wanted - done, off_t(offset) + off_t(done)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw BackupError.failed(n == 0 ? "the copy is shorter than it was" : String(cString: strerror(errno))) }
                    done += n
                }
                if offset <= current.served { current.served = max(current.served, offset + Int64(wanted)) }
                slot = current
                return bytes
            }
        }
    }

    /// Closes the copy (its space comes back) and gives the slot back; whether every byte had been
    /// read. Only the first call does anything.
    @discardableResult
    func close() -> Bool {
        guard let closed = state.withLock({ slot -> Open? in defer { slot = nil }; return slot }) else { return false }
        Glibc.close(closed.fd)
        release()
        return closed.served == size
    }

    /// Removes what a daemon that died while copying left in the state directory.
    static func removeStale(in directory: String, logger: Logger) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(namePrefix) {
            if unlink(directory + "/" + name) == 0 {
                logger.notice("removed the copy of a backup cut short", metadata: ["file": "\(directory)/\(name)"])
            }
        }
    }
}
