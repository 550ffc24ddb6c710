import Foundation
import GRDB

/// Changes made to a SQLite file behind the daemon's back (the daemon stopped): a backup damaged
/// on purpose, an audit record moved in time. Reads for checks go through ReadOnlySQLite.
public enum SQLiteEdit {
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
