import Foundation

/// Bounds of `twofoldctl backup`'s steps.
public enum BackupLimits {
    /// Bytes of the backup in one `backupChunk`: 2 MiB, about 2.8 MiB as base64 in its JSON,
    /// well inside a RESPONSE's 4 MiB.
    public static let chunkBytes = 2 << 20
}

/// A backup the daemon took for this connection (`ControlRequest.backupBegin`): what the client
/// needs to fetch it and to check what it got. Never holds a secret (the file's secrets are sealed).
public struct BackupInfo: Codable, Sendable, Equatable {
    /// Names the backup in `backupRead` and `backupEnd` (16 hex digits, random).
    public var id: String
    /// The file's length in bytes, and its SHA-256 (64 lowercase hex digits).
    public var size: Int64
    public var sha256: String
    /// The manifest the daemon wrote into the file's meta table (`BackupManifest`): the snapshot's
    /// time on the daemon's clock (ms since the epoch), the host, the twofoldd that took it.
    public var takenMillis: Int64
    public var host: String
    public var twofoldVersion: String
    /// Users the copy holds (rows of its `users` table: enrolled, or with a setting of their own).
    public var users: Int
    /// The most `backupRead` returns at once.
    public var chunkBytes: Int

    public init(id: String, size: Int64, sha256: String, takenMillis: Int64, host: String, twofoldVersion: String, users: Int,
                chunkBytes: Int = BackupLimits.chunkBytes) {
        self.id = id
        self.size = size
        self.sha256 = sha256
        self.takenMillis = takenMillis
        self.host = host
        self.twofoldVersion = twofoldVersion
        self.users = users
        self.chunkBytes = chunkBytes
    }
}

/// Bytes of a backup from `offset` (`ControlRequest.backupRead`); base64 in the JSON. Empty at the end.
public struct BackupChunk: Codable, Sendable, Equatable {
    public var offset: Int64
    public var data: Data

    public init(offset: Int64, data: Data) {
        self.offset = offset
        self.data = data
    }
}
