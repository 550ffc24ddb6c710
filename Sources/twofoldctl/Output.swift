import Foundation

/// Standard output for data, standard error for messages and prompts. Standard output is flushed
/// before anything goes to standard error, so the two stay in order when both go to one place.
enum Output {
    static func line(_ text: String = "") {
        print(text)
    }

    /// Writes `text` as is (it should end with a newline).
    static func raw(_ text: String) {
        print(text, terminator: "")
    }

    static func flush() {
        fflush(nil)
    }

    /// A line on standard error.
    static func error(_ text: String) {
        fflush(nil)
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A prompt on standard error (no newline).
    static func prompt(_ text: String) {
        fflush(nil)
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A JSON document on standard output: pretty-printed with sorted keys, or on one line
    /// (`compact`) for the steps of `enroll --json`.
    static func json<T: Encodable>(_ value: T, compact: Bool = false) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = compact ? [.sortedKeys, .withoutEscapingSlashes] : [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else {
            error("twofoldctl: cannot encode the JSON output")
            return
        }
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)
    }
}
