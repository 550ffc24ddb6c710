import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What `bulk-import` and `contact import` share: a list read from a file or standard input, one
/// item a line (blank lines and lines starting with # skipped), a line that cannot be used refused
/// with its number, the others sent to twofoldd in batches under the frame bound, its refusals
/// mapped back to their lines; then the summary (or its JSON) and the exit status, 0 only if every
/// line was imported. Each command keeps its own line format, its request and its words.
enum LineImport {
    /// A request stays well under the 64 KiB frame bound.
    static let maxBatchJSONBytes = 48_000

    struct Refused: Encodable {
        var line: Int
        var user: String?
        var error: String
    }

    struct Summary: Encodable {
        var ok: Bool
        var imported: Int
        var refused: [Refused]
    }

    /// Why a line cannot be used, with its user when the line names one.
    struct LineError: Error {
        var user: String?
        var message: String
    }

    /// Reads `file` (- for standard input), makes each line an item with `parse` (given the line
    /// trimmed, never blank nor a comment) and sends them by `request`, at most `batch` and about
    /// `maxBatchJSONBytes` (each item's share by `size`) a request.
    static func run<Item>(_ session: DaemonSession, file: String, batch: Int,
                          parse: (String) -> Result<Item, LineError>, size: (Item) -> Int,
                          request: ([Item]) -> ControlRequest) throws(CLIFailure) -> Summary {
        // Standard input through a stream of its own (a duplicate of fd 0).
        guard let stream = file == "-" ? fdopen(dup(0), "r") : fopen(file, "r") else {
            throw CLIFailure(ExitStatus.failure, "cannot read \(file): \(String(cString: strerror(errno)))")
        }
        defer { fclose(stream) }

        var summary = Summary(ok: true, imported: 0, refused: [])
        var items: [Item] = []
        var itemLines: [Int] = []
        var bytes = 0
        var number = 0
        var linePointer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(linePointer) }

        func flush() throws(CLIFailure) {
            guard !items.isEmpty else { return }
            let response = try session.send(request(items))
            guard case .importedMany(let outcomes) = response, outcomes.count == items.count else { throw unexpected(response) }
            for (outcome, line) in zip(outcomes, itemLines) {
                if let error = outcome.error {
                    summary.refused.append(Refused(line: line, user: outcome.user, error: error))
                } else {
                    summary.imported += 1
                }
            }
            items.removeAll(keepingCapacity: true)
            itemLines.removeAll(keepingCapacity: true)
            bytes = 0
        }

        while getline(&linePointer, &capacity, stream) >= 0 {
            number += 1
            guard let linePointer else { break }
            let text = String(cString: linePointer).trimmingSpaces()
            if text.isEmpty || text.hasPrefix("#") { continue }
            switch parse(text) {
            case .failure(let error):
                summary.refused.append(Refused(line: number, user: error.user, error: error.message))
            case .success(let item):
                let itemSize = size(item)
                if bytes + itemSize > maxBatchJSONBytes { try flush() }
                items.append(item)
                itemLines.append(number)
                bytes += itemSize
                if items.count >= batch { try flush() }
            }
        }
        try flush()
        summary.refused.sort { $0.line < $1.line }
        summary.ok = summary.refused.isEmpty
        return summary
    }

    /// The first field of `text` (up to a space or a tab) and what follows the blanks after it; nil
    /// when nothing does. Walks the UTF-8 bytes: a walk by characters cost more per line than the
    /// daemon's whole import of it (benchmarks/bulk-import.sh).
    static func firstField(_ text: Substring) -> (field: Substring, rest: Substring?) {
        let bytes = text.utf8
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let end = bytes.firstIndex(where: isBlank) else { return (text, nil) }
        guard let next = bytes[end...].firstIndex(where: { !isBlank($0) }) else { return (text[..<end], nil) }
        return (text[..<end], text[next...])
    }

    /// The summary: its JSON, or each refused line on standard error (`user` shows its user) and
    /// `imported`'s sentence with the count of refused lines. Throws the exit status unless all went in.
    static func report(_ summary: Summary, json: Bool, user: (String) -> String, imported: (Int) -> String) throws(CLIFailure) {
        if json {
            Output.json(summary)
        } else {
            for r in summary.refused {
                Output.error("line \(r.line)\(r.user.map { " (\(user($0)))" } ?? ""): \(r.error)")
            }
            Output.line(imported(summary.imported)
                        + (summary.refused.isEmpty ? "." : "; \(summary.refused.count) line\(summary.refused.count == 1 ? "" : "s") refused."))
        }
        if !summary.ok {
            throw CLIFailure(ExitStatus.failure, "\(summary.refused.count) lines not imported", reported: true)
        }
    }
}
