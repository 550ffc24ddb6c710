#if canImport(Glibc)
import Glibc
#endif
import TwofoldProtocol

/// The service's log: one line per record on stderr in the form journald understands, as twofoldd's
/// `JournalLogHandler` writes them: a `<N>` syslog priority, the message, then `key=value` fields
/// (a value that is not plain ASCII is quoted with every control and format character escaped,
/// so a peer-sent name cannot forge a line). Callers never pass a message or a code.
public struct DeliveryLog: Sendable {
    public enum Priority: Int, Sendable {
        case error = 3, warning = 4, notice = 5, info = 6, debug = 7
    }

    /// Where lines go (stderr; tests may pass another descriptor).
    let fd: Int32

    public init(fd: Int32 = 2) { self.fd = fd }

    public func log(_ priority: Priority, _ message: String, _ fields: [(String, String)] = []) {
        var text = "<\(priority.rawValue)>" + DisplayText.escaped(message)
        for (key, value) in fields { text += " \(key)=\(Self.quote(value))" }
        text += "\n"
        // One write per line, so lines of concurrent requests do not interleave.
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    static func quote(_ value: String) -> String {
        let safe = value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }
        if safe && !value.isEmpty { return value }
        var out = "\""
        for scalar in DisplayText.escaped(value).unicodeScalars {
            if scalar == "\"" { out += "\\\"" } else { out.unicodeScalars.append(scalar) }
        }
        return out + "\""
    }
}
