import Foundation
import GRDB
import TwofoldStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `twofoldctl backup`'s copy: SQLite's online backup API, run from a reader of the pool. The
/// reader holds one WAL snapshot for the whole copy, so the copy is consistent, and in WAL mode a
/// reader never blocks the writer: logins commit meanwhile (their commits are not in the copy).
extension SQLiteStore: OnlineBackup {
    public func backup(to path: String, manifest: @escaping @Sendable () -> BackupManifest) async throws(BackupError) -> BackupSnapshot {
        do {
            try checkOpen()
        } catch {
            throw BackupError.failed("the store is closed")
        }
        try Self.createCopyFile(path)
        do {
            let (made, users) = try await copySnapshot(to: path, manifest: manifest)
            try await Self.seal(copy: path, manifest: made)
            return BackupSnapshot(manifest: made, users: users)
        } catch {
            Self.removeCopy(path)
            throw Self.backupError(error, path: path)
        }
    }

    /// The whole database in one step (`pagesPerStep` -1) from the reader's snapshot; the manifest's
    /// time and the count of users are read in that same snapshot.
    private func copySnapshot(to path: String, manifest: @escaping @Sendable () -> BackupManifest) async throws -> (BackupManifest, Int) {
        var config = Configuration()
        config.label = "twofold.backup.copy"
        let copy = try DatabaseQueue(path: path, configuration: config)
        defer { try? copy.close() }
        let pool = self.pool
        return try await copy.writeWithoutTransaction { destination in
            try pool.read { db in
                let taken = manifest()
                let users = try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0
                try db.backup(to: destination)
                return (taken, users)
            }
        }
    }

    /// Makes the copy stand alone and say what it is. Its first page came from a WAL database, so
    /// it opens in WAL mode: switched to DELETE (the WAL folded in and removed), the manifest rows
    /// written, the whole file checked.
    private static func seal(copy path: String, manifest: BackupManifest) async throws {
        var config = Configuration()
        config.label = "twofold.backup.seal"
        let copy = try DatabaseQueue(path: path, configuration: config)
        do {
            try await check(copy, manifest: manifest)
        } catch {
            try? copy.close()
            throw error
        }
        try copy.close()
        // Leaving WAL mode removed the WAL; one still there would hold part of the copy.
        guard access(path + "-wal", F_OK) != 0 else { throw BackupError.failed("the copy kept a -wal file") }
        unlink(path + "-shm")
    }

    private static func check(_ copy: DatabaseQueue, manifest: BackupManifest) async throws {
        try await copy.writeWithoutTransaction { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE")
            guard mode == "delete" else { throw BackupError.failed("the copy stayed in journal mode \(mode ?? "unknown")") }
            try db.inTransaction {
                for row in manifest.rows {
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [row.name, Data(row.value)])
                }
                return .commit
            }
            let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            guard problems == ["ok"] else {
                throw BackupError.failed("the copy failed integrity_check: \(problems.prefix(3).joined(separator: "; "))")
            }
        }
    }

    /// A new, empty file of mode 0600; never one that is there already (nor through a symlink).
    private static func createCopyFile(_ path: String) throws(BackupError) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == ENOSPC || code == EDQUOT { throw BackupError.noSpace(path: path) }
            throw BackupError.failed("cannot create \(path): \(String(cString: strerror(code)))")
        }
        Glibc.close(fd)
    }

    /// The copy and whatever SQLite left beside it.
    static func removeCopy(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }

    private static func backupError(_ error: any Error, path: String) -> BackupError {
        if let error = error as? BackupError { return error }
        if let error = error as? DatabaseError, error.resultCode == .SQLITE_FULL { return .noSpace(path: path) }
        return .failed(storeError(error).description)
    }
}
