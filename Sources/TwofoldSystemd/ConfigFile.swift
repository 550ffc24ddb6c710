#if canImport(Glibc)
import Glibc
#endif

/// A `key = value` config file as twofoldd and twofold-deliver read theirs: the file whole (1 MiB
/// at most), then its lines in order, each named `file:line` in errors. Each program keeps its own
/// keys (the `set` it passes) and its own error type (`error` makes one from a message).
public enum ConfigFile {
    /// Where a line's comment starts.
    public enum Comments: Sendable {
        /// At the first `#` (twofoldd.conf).
        case hash
        /// At a `#` outside double quotes (deliver.conf: a command's quoted argument may hold one).
        case hashOutsideQuotes
    }

    /// The text of `path`; nil when the file does not exist and is not `required` (an explicit
    /// --config must exist; a missing default file means the built-in defaults).
    public static func read<E: Error>(_ path: String, required: Bool, error: (String) -> E) throws(E) -> String? {
        guard let handle = fopen(path, "r") else {
            if !required && errno == ENOENT { return nil }
            throw error("cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
            if bytes.count > 1 << 20 { throw error("config file \(path) is larger than 1 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Calls `set` with each `key = value` line of `text`, in order: the key lowercased, key and
    /// value trimmed, `at` naming the line (`source:number`). Blank lines and comments are skipped;
    /// a line without `=` and a key set twice are errors. An unknown key is `set`'s to refuse.
    /// Returns the keys set.
    @discardableResult
    public static func parse<E: Error>(_ text: String, source: String, comments: Comments, error: (String) -> E,
                                       set: (_ key: String, _ value: String, _ at: String) throws -> Void) throws -> Set<String> {
        var seen = Set<String>()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = trimmed(withoutComment(rawLine, comments))
            if trimmed.isEmpty { continue }
            let at = "\(source):\(number + 1)"
            guard let eq = trimmed.firstIndex(of: "=") else { throw error("\(at): expected 'key = value'") }
            let key = Self.trimmed(trimmed[..<eq]).lowercased()
            let value = String(Self.trimmed(trimmed[trimmed.index(after: eq)...]))
            guard !seen.contains(key) else { throw error("\(at): '\(key)' is set twice") }
            seen.insert(key)
            try set(key, value, at)
        }
        return seen
    }

    /// `text` without the white space around it.
    public static func trimmed<S: StringProtocol>(_ text: S) -> Substring {
        let s = Substring(text)
        guard let start = s.firstIndex(where: { !$0.isWhitespace }), let end = s.lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return s[start...end]
    }

    /// The line up to where its comment starts.
    static func withoutComment(_ line: Substring, _ comments: Comments) -> Substring {
        switch comments {
        case .hash:
            return line.firstIndex(of: "#").map { line[..<$0] } ?? line
        case .hashOutsideQuotes:
            var quoted = false, escaped = false
            for index in line.indices {
                let c = line[index]
                if escaped { escaped = false; continue }
                if quoted && c == "\\" { escaped = true; continue }
                if c == "\"" { quoted.toggle() }
                if c == "#" && !quoted { return line[..<index] }
            }
            return line
        }
    }
}
