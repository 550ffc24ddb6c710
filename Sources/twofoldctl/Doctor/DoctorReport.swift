import TwofoldProtocol

/// What `doctor` prints: the findings by section with a marker each and the fix under it, then a
/// summary line; or one JSON document.
struct DoctorReport: Encodable {
    var ok: Bool
    var exitCode: Int32
    var findings: [Finding]
    /// The PAM services whose auth stack runs pam_twofold (nil when --pam-dir could not be read).
    var services: [String]?
    var users: UsersCheck.Report?
    var daemon: ServerInfo?

    static let sections = ["Daemon", "Key", "Store", "Fleet", "Delivery", "Security keys (FIDO2)", "PAM", "sshd", "SSH keys", "Users"]

    init(findings: [Finding], services: [String]?, users: UsersCheck.Report?, daemon: ServerInfo?, exitCode: Int32) {
        self.services = services
        // Stable order: by section, then as the checks found them.
        self.findings = Self.sections.flatMap { section in findings.filter { $0.section == section } }
        self.users = users
        self.daemon = daemon
        self.exitCode = exitCode
        ok = exitCode == ExitStatus.ok
    }

    private enum CodingKeys: String, CodingKey { case ok, exitCode, findings, services, users, daemon }

    /// `services`, `users` and `daemon` are written as null when unknown (not left out).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ok, forKey: .ok)
        try container.encode(exitCode, forKey: .exitCode)
        try container.encode(findings, forKey: .findings)
        try container.encode(services, forKey: .services)
        try container.encode(users, forKey: .users)
        try container.encode(daemon, forKey: .daemon)
    }

    var errors: Int { findings.filter { $0.severity == .error }.count }
    var warnings: Int { findings.filter { $0.severity == .warning }.count }

    func text(headings: [String: String]) -> String {
        var out = ""
        for section in Self.sections {
            let items = findings.filter { $0.section == section }
            guard !items.isEmpty || section == "Users" else { continue }
            out += (headings[section].map { "\(section) (\($0))" } ?? section) + "\n"
            for finding in items {
                out += "  \(finding.severity.marker)  \(DisplayText.escaped(finding.subject)): \(DisplayText.escaped(finding.message)) [\(finding.check)]\n"
                if let fix = finding.fix { out += "        fix: \(DisplayText.escaped(fix))\n" }
            }
            if section == "Users" { out += usersFooter() }
            out += "\n"
        }
        return out + summary + "\n"
    }

    private func usersFooter() -> String {
        users == nil && !findings.contains { $0.section == "Users" } ? "  not checked: twofoldd was not asked\n" : ""
    }

    var summary: String {
        let counts = "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")"
        switch exitCode {
        case ExitStatus.unreachable:
            return "\(counts). twofoldd could not be reached: the local checks ran, the daemon's (key, users) did not (exit 3)."
        case ExitStatus.permissionDenied:
            return "\(counts). twofoldd answers only root or its admin group: run `sudo twofoldctl doctor` for the key and users (exit 4)."
        case ExitStatus.ok:
            return warnings == 0 ? "No problems found." : "\(counts): nothing found that locks anyone out or leaves 2FA unenforced; read the warnings."
        default:
            return "\(counts): fix the errors before you log out: each locks someone out or leaves 2FA unenforced where it is configured (exit 1)."
        }
    }
}
