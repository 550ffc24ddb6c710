/// A channel's command as the config file gives it: an absolute program path and its arguments,
/// split on white space; double quotes group words with spaces (`"a b"`), and inside them `\"` and
/// `\\` stand for a quote and a backslash. No shell: no variables, globs, pipes or redirections.
public struct ChannelCommand: Sendable, Equatable {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ text: String) { description = text }
    }

    public var path: String
    public var arguments: [String]

    public init(path: String, arguments: [String] = []) {
        self.path = path
        self.arguments = arguments
    }

    public init(parsing text: String) throws {
        let words = try Self.split(text)
        guard let first = words.first else { throw Invalid("no program given") }
        guard first.hasPrefix("/") else { throw Invalid("the program must be an absolute path (no shell looks it up), not '\(first)'") }
        self.init(path: first, arguments: Array(words.dropFirst()))
    }

    /// The words of `text`.
    public static func split(_ text: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false, quoted = false, escaped = false
        for c in text {
            if escaped {
                guard c == "\"" || c == "\\" else { throw Invalid("inside double quotes a backslash may only come before \" or \\") }
                current.append(c)
                escaped = false
            } else if quoted {
                if c == "\\" { escaped = true } else if c == "\"" { quoted = false } else { current.append(c) }
            } else if c == "\"" {
                quoted = true
                inWord = true
            } else if c.isWhitespace {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(c)
                inWord = true
            }
            if c.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" }) { throw Invalid("a control character in the command") }
        }
        guard !quoted && !escaped else { throw Invalid("a double quote is not closed") }
        if inWord { words.append(current) }
        return words
    }
}
