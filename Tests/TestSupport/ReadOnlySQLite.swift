import Foundation

/// Reads a SQLite database the way an outside reader would: Python's sqlite3 module (a SQLite of its
/// own, not the daemon's) opening the file read-only (`mode=ro`), beside a running daemon or after
/// one was killed. Nothing is written to the database or its WAL.
public enum ReadOnlySQLite {
    /// Runs each statement in turn on one read-only connection; per statement its rows, each value
    /// as text (nil for NULL).
    public static func query(_ path: String, _ statements: [String]) throws -> [[[String?]]] {
        let script = """
            import json, sqlite3, sys
            c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
            print(json.dumps([[[None if v is None else str(v) for v in row] for row in c.execute(s)] for s in sys.argv[2:]]))
            """
        let result = try ChildProcess.run(["/usr/bin/python3", "-c", script, path] + statements)
        guard result.status == 0 else { throw HarnessError("reading \(path) read-only: \(result.output)") }
        return try JSONDecoder().decode([[[String?]]].self, from: Data(result.output.utf8))
    }

    /// `PRAGMA integrity_check`'s answer, one line per problem ("ok" when there is none).
    public static func integrityCheck(_ path: String) throws -> String {
        try query(path, ["PRAGMA integrity_check"])[0].map { $0.compactMap { $0 }.joined(separator: " ") }.joined(separator: "\n")
    }
}
