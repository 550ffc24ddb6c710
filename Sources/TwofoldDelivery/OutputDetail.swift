import TwofoldProtocol

/// The `detail` of a command that failed: its exit status and the first line it wrote, made safe
/// for a log and for the response. The code is never in it.
public enum OutputDetail {
    /// Longest output line kept.
    public static let maxLineBytes = 200

    /// "exit status N: LINE", "killed by signal N: LINE", or the status alone when it wrote nothing.
    public static func failure(_ status: String, output: [UInt8], code: String) -> String {
        let line = firstLine(output, code: code)
        return line.isEmpty ? status : status + ": " + line
    }

    /// The first non-blank line of `output` with every occurrence of `code` replaced by `[code]`,
    /// then control and format characters replaced by `?`, then cut to `maxLineBytes` bytes (on
    /// a character boundary). The code is replaced before the cut, so no piece of it survives.
    public static func firstLine(_ output: [UInt8], code: String) -> String {
        let text = String(decoding: output, as: UTF8.self)
        let line = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .first { !$0.allSatisfy(\.isWhitespace) }.map(String.init) ?? ""
        return sanitize(line, code: code)
    }

    /// `text` with `code` masked, controls replaced and cut to `maxLineBytes`.
    public static func sanitize(_ text: String, code: String) -> String {
        var masked = code.isEmpty ? text : text.replacingAll(code, with: "[code]")
        masked = String(String.UnicodeScalarView(masked.unicodeScalars.map { scalar in
            scalar != "\\" && DisplayText.needsEscape(scalar) ? "?" : scalar
        }))
        masked = masked.trimmingSpaces()
        guard masked.utf8.count > maxLineBytes else { return masked }
        var cut = ""
        for character in masked {
            if cut.utf8.count + character.utf8.count > maxLineBytes - 3 { break }
            cut.append(character)
        }
        return cut + "..."
    }
}

extension String {
    /// Every occurrence of `target` (compared byte for byte) replaced by `replacement`.
    func replacingAll(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), needle = Array(target.utf8)
        guard !needle.isEmpty, bytes.count >= needle.count else { return self }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + needle.count <= bytes.count && bytes[i..<(i + needle.count)].elementsEqual(needle) {
                out += Array(replacement.utf8)
                i += needle.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
