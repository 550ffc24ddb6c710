import Foundation
import TwofoldProtocol

/// An audit export given to `twofoldd restore --audit`: the records of `twofoldctl audit --json`
/// (a JSON array, or one record a line), or the lines of `journalctl -o json -u twofoldd`, where
/// the daemon logs each record as `ACTION outcome=... reason="..." user=...` (JournalLogHandler).
/// Any local program can write a journal line shaped like that (`logger`), so a journal entry
/// counts only when journald itself says it came from twofoldd's unit (`_SYSTEMD_UNIT`, a field
/// no client can set): a forged "override set to exempt" must not be re-applied by a restore.
public enum AuditExport {
    /// The unit whose journal entries are the daemon's.
    static let unit = "twofoldd.service"

    /// Every record of the file; a file that is none of these forms is an error naming its line.
    public static func read(path: String) throws -> [AuditEntry] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("--audit \(path) cannot be read") }
        let text = String(decoding: data, as: UTF8.self)
        if text.drop(while: \.isWhitespace).first == "[" {
            do {
                return try JSONDecoder().decode([AuditEntry].self, from: data)
            } catch {
                throw ConfigurationError("--audit \(path) is a JSON array but not one of audit records (twofoldctl audit --json)")
            }
        }
        var entries: [AuditEntry] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            guard let entry = try parse(line: Data(line.utf8)) else {
                if isForeignJournalLine(Data(line.utf8)) { continue }
                throw ConfigurationError("--audit \(path) line \(number + 1) is neither an audit record (twofoldctl audit --json) "
                    + "nor a journal entry (journalctl -o json)")
            }
            entries.append(entry)
        }
        return entries
    }

    /// One line: an audit record, or a journal entry holding one; nil for anything else.
    static func parse(line: Data) throws -> AuditEntry? {
        if let entry = try? JSONDecoder().decode(AuditEntry.self, from: line) { return entry }
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              object["_SYSTEMD_UNIT"] as? String == unit,
              let message = object["MESSAGE"] as? String,
              let micros = (object["__REALTIME_TIMESTAMP"] as? String).flatMap(Int64.init) else { return nil }
        return journalRecord(message, timeMillis: micros / 1_000)
    }

    /// A journal entry that is not an audit record (another message of twofoldd, or of another
    /// program): skipped.
    static func isForeignJournalLine(_ line: Data) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { return false }
        return object["MESSAGE"] != nil || object["__CURSOR"] != nil
    }

    /// The record a daemon's log line carries; nil for a log line that is no audit record.
    static func journalRecord(_ message: String, timeMillis: Int64) -> AuditEntry? {
        var rest = Substring(message)
        let action = rest.prefix { $0 != " " }
        guard !action.isEmpty, !action.contains("=") else { return nil }
        rest = rest.dropFirst(action.count)
        var fields: [String: String] = [:]
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces)
            var value = ""
            var index = rest.index(after: equals)
            if index < rest.endIndex, rest[index] == "\"" {
                index = rest.index(after: index)
                while index < rest.endIndex, rest[index] != "\"" {
                    // JournalLogHandler.quote doubles a backslash and escapes a quote: a value ending
                    // in a backslash must not swallow the fields after it.
                    let next = rest.index(after: index)
                    if rest[index] == "\\", next < rest.endIndex, rest[next] == "\"" || rest[next] == "\\" {
                        index = next
                    }
                    value.append(rest[index])
                    index = rest.index(after: index)
                }
                if index < rest.endIndex { index = rest.index(after: index) }
            } else {
                while index < rest.endIndex, rest[index] != " " { value.append(rest[index]); index = rest.index(after: index) }
            }
            fields[key] = value
            rest = rest[index...]
        }
        guard let outcome = fields["outcome"] else { return nil }
        func field(_ name: String) -> String? { fields[name].flatMap { $0.isEmpty ? nil : $0 } }
        return AuditEntry(timeMillis: timeMillis, action: String(action), user: field("user"), service: field("service"), rhost: field("rhost"),
                          tty: nil, peerUID: field("peer_uid").flatMap { UInt32($0) }, outcome: outcome, reason: field("reason"), host: field("host"))
    }
}
