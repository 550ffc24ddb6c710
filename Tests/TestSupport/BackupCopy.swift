import Foundation
import GRDB

/// A backup of a daemon's SQLite store as the backup contract says (TwofoldStore's
/// BackupManifest): SQLite's online backup of the database (stopped or live: both are consistent
/// copies), in rollback-journal mode (no -wal needed), with the manifest rows in `meta`. Stands in
/// for `twofoldctl backup` until that lands.
public enum BackupCopy {
    public static func make(of database: String, to path: String, manifestRows: [(name: String, value: [UInt8])]) throws {
        let source = try DatabaseQueue(path: database)
        defer { try? source.close() }
        let destination = try DatabaseQueue(path: path)
        defer { try? destination.close() }
        try source.backup(to: destination)
        try destination.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            for row in manifestRows {
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?)", arguments: [row.name, Data(row.value)])
            }
        }
    }

    /// One statement on a SQLite file (a test that damages a backup on purpose).
    public static func execute(path: String, sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
    }

    /// The first page of a table or index (1-based), to damage exactly it.
    public static func rootPage(path: String, of name: String) throws -> Int {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { try Int.fetchOne($0, sql: "SELECT rootpage FROM sqlite_master WHERE name = ?", arguments: [name]) ?? 0 }
    }
}
