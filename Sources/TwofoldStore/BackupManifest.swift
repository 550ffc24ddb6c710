/// What a backup says of itself: rows the daemon writes into the `meta` table of its online copy of
/// a single host's SQLite store once the copy is taken (`twofoldctl backup`), read back by
/// `twofoldd restore`, which needs to know when the copy was taken to know what may have changed
/// since. A live store never holds them; their presence is what makes a file a backup.
public struct BackupManifest: Sendable, Equatable, Codable {
    public static let takenMillisRow = "backup/taken_millis"
    public static let hostRow = "backup/host"
    public static let versionRow = "backup/twofold_version"
    public static let rowNames = [takenMillisRow, hostRow, versionRow]

    /// The daemon's clock when the copy's snapshot was read (ms since the epoch).
    public var takenMillis: Int64
    /// The host whose store this is (the daemon's host name).
    public var host: String
    /// The twofoldd that took it (`TwofoldVersion.string`).
    public var twofoldVersion: String

    public init(takenMillis: Int64, host: String, twofoldVersion: String) {
        self.takenMillis = takenMillis
        self.host = host
        self.twofoldVersion = twofoldVersion
    }

    /// The rows to write into the copy's `meta` table (values are UTF-8 text).
    public var rows: [(name: String, value: [UInt8])] {
        [(Self.takenMillisRow, Array(String(takenMillis).utf8)),
         (Self.hostRow, Array(host.utf8)),
         (Self.versionRow, Array(twofoldVersion.utf8))]
    }

    /// The manifest from a database's `meta` rows (any rows; the others are ignored). Nil when
    /// none of the backup rows is there (a store, not a backup); an error when some are missing
    /// or unreadable.
    public init?(rows: [String: [UInt8]]) throws {
        let present = Self.rowNames.filter { rows[$0] != nil }
        guard !present.isEmpty else { return nil }
        func text(_ name: String) throws -> String {
            guard let bytes = rows[name] else {
                throw StoreError.database("the backup's manifest has no \(name) row; the file is damaged")
            }
            guard let text = String(validating: bytes, as: UTF8.self), !text.isEmpty else {
                throw StoreError.database("the backup's \(name) row is not text; the file is damaged")
            }
            return text
        }
        guard let taken = Int64(try text(Self.takenMillisRow)), taken > 0 else {
            throw StoreError.database("the backup's \(Self.takenMillisRow) row is not a time; the file is damaged")
        }
        self.init(takenMillis: taken, host: try text(Self.hostRow), twofoldVersion: try text(Self.versionRow))
    }
}
