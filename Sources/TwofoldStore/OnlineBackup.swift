/// A store that copies itself, consistently, while it serves logins: a single host's SQLite file
/// (`twofoldctl backup`). PostgreSQL does not conform: its own backups (pg_dump, base backups with
/// a WAL archive) are the ones for a fleet.
public protocol OnlineBackup: Sendable {
    /// Writes a consistent copy of the store into a new file at `path` (created with mode 0600; it
    /// must not exist yet): the store's schema and rows as one snapshot, sealed as they are, in one
    /// self-contained file (journal_mode DELETE: no -wal beside it), with the `BackupManifest` rows
    /// in its `meta` table, checked with `PRAGMA integrity_check`. `manifest` is called once, when
    /// the snapshot is read (its time is the backup's). On any failure the file is removed.
    func backup(to path: String, manifest: @escaping @Sendable () -> BackupManifest) async throws(BackupError) -> BackupSnapshot
}

/// What a backup holds, as its file says.
public struct BackupSnapshot: Sendable, Equatable {
    public var manifest: BackupManifest
    /// Rows of `users` in the copy.
    public var users: Int

    public init(manifest: BackupManifest, users: Int) {
        self.manifest = manifest
        self.users = users
    }
}

/// Why a copy could not be made. The messages name files, never a secret.
public enum BackupError: Error, Equatable, CustomStringConvertible {
    /// The file system of the copy is full (or the copy would pass a quota).
    case noSpace(path: String)
    /// The store, or the copy, failed otherwise.
    case failed(String)

    public var description: String {
        switch self {
        case .noSpace(let path): "no space left for the copy at \(path)"
        case .failed(let reason): reason
        }
    }
}
