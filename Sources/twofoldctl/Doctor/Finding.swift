/// One result of `twofoldctl doctor`: a check (a stable code such as `pam.sufficient`), how bad it
/// is, what it is about (file:line, service, user, setting), what is wrong in one sentence, and
/// the fix as a command or a line to write.
struct Finding: Encodable, Equatable {
    enum Severity: String, Encodable, Comparable {
        case ok, warning, error

        private var rank: Int { self == .ok ? 0 : self == .warning ? 1 : 2 }
        static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }

        /// The marker in the human output.
        var marker: String { self == .ok ? "ok  " : self == .warning ? "WARN" : "FAIL" }
    }

    var check: String
    var severity: Severity
    var subject: String
    var message: String
    var fix: String?

    init(_ check: String, _ severity: Severity, subject: String, _ message: String, fix: String? = nil) {
        self.check = check
        self.severity = severity
        self.subject = subject
        self.message = message
        self.fix = fix
    }

    static func ok(_ check: String, subject: String, _ message: String) -> Finding {
        Finding(check, .ok, subject: subject, message)
    }

    static func warning(_ check: String, subject: String, _ message: String, fix: String?) -> Finding {
        Finding(check, .warning, subject: subject, message, fix: fix)
    }

    static func error(_ check: String, subject: String, _ message: String, fix: String?) -> Finding {
        Finding(check, .error, subject: subject, message, fix: fix)
    }

    /// The section of the human output, from the check's prefix.
    var section: String {
        switch check.split(separator: ".").first ?? "" {
        case "daemon": return "Daemon"
        case "key": return "Key"
        case "store", "backup": return "Store"
        case "fleet": return "Fleet"
        case "delivery": return "Delivery"
        case "fido2": return "Security keys (FIDO2)"
        case "pam", "policy": return "PAM"
        case "sshd": return "sshd"
        case "sshkeys": return "SSH keys"
        default: return "Users"
        }
    }

    private enum CodingKeys: String, CodingKey { case check, severity, subject, message, fix }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(check, forKey: .check)
        try container.encode(severity, forKey: .severity)
        try container.encode(subject, forKey: .subject)
        try container.encode(message, forKey: .message)
        try container.encode(fix, forKey: .fix) // null when there is nothing to fix
    }
}
