#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import TwofoldProtocol

/// Writes one line per record to stderr in the form journald understands: a `<N>` syslog priority
/// prefix, then the message and its metadata as `key=value`. No timestamps (journald adds them).
/// Callers never put codes or secrets in messages or metadata.
public struct JournalLogHandler: LogHandler {
    /// Shared by every logger of the process, so a reload (SIGHUP) changes the level of them all.
    private let levelSwitch: LogLevelSwitch
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public var logLevel: Logger.Level {
        get { levelSwitch.level }
        set { levelSwitch.level = newValue }
    }

    public init(label: String, level: Logger.Level) {
        self.init(label: label, levelSwitch: LogLevelSwitch(level))
    }

    public init(label: String, levelSwitch: LogLevelSwitch) {
        self.label = label
        self.levelSwitch = levelSwitch
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let extra { all.merge(extra) { $1 } }
        var text = "<\(Self.priority(level))>" + DisplayText.escaped("\(message)")
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            text += " \(key)=\(Self.quote("\(value)"))"
        }
        text += "\n"
        // One write per record so lines from concurrent tasks do not interleave.
        text.withCString { pointer in _ = write(2, pointer, strlen(pointer)) }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A metadata value as one token: as it is when it is plain ASCII, else quoted with every control,
    /// format or spoofing character escaped (`DisplayText`), so a client-sent name cannot forge a log
    /// line or a terminal sequence in `journalctl`.
    static func quote(_ value: String) -> String {
        let safe = value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }
        if safe && !value.isEmpty { return value }
        let escaped = DisplayText.escaped(value)
        guard escaped.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + escaped + "\"" }
        var out = "\""
        for scalar in escaped.unicodeScalars {
            if scalar == "\"" { out += "\\\"" } else { out.unicodeScalars.append(scalar) }
        }
        return out + "\""
    }
}

/// The log level in force, read on every log call (one atomic load) and set by a reload.
public final class LogLevelSwitch: Sendable {
    private let index: Atomic<Int>

    public init(_ level: Logger.Level) {
        index = Atomic(Logger.Level.allCases.firstIndex(of: level) ?? 0)
    }

    public var level: Logger.Level {
        get { Logger.Level.allCases[index.load(ordering: .relaxed)] }
        set { index.store(Logger.Level.allCases.firstIndex(of: newValue) ?? 0, ordering: .relaxed) }
    }
}
