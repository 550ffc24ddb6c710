import Foundation

/// The sshd section: `sshd -T` (argv, no shell; `-f FILE` with --sshd-config) and whether its
/// effective settings let the code be asked, together with what sshd's PAM stack checks.
struct SSHDCheck {
    /// --sshd, else /usr/sbin/sshd.
    let sshd: String
    let sshdGiven: Bool
    let config: String?
    /// The sshd service's auth stack, when it runs pam_twofold.
    let pam: PAMServiceAnalysis?
    let pamFile: String

    static let defaultSSHD = "/usr/sbin/sshd"
    static let defaultConfig = "/etc/ssh/sshd_config"

    var configName: String { config ?? Self.defaultConfig }
    var argv: [String] { [sshd, "-T"] + (config.map { ["-f", $0] } ?? []) }

    /// The findings, and sshd's effective settings when `sshd -T` gave them (the SSH keys section
    /// reads them too).
    func run() -> (findings: [Finding], settings: SSHDSettings?) {
        guard access(sshd, X_OK) == 0 else {
            return ([sshdGiven
                ? .warning("sshd.not-checked", subject: sshd, "there is no sshd at \(sshd): its settings were not checked", fix: "give sshd's path with --sshd")
                : .ok("sshd.not-checked", subject: sshd, "sshd is not installed: nothing to check")], nil)
        }
        guard geteuid() == 0 else {
            return ([.warning("sshd.not-checked", subject: argv.joined(separator: " "),
                              "sshd -T needs root (it reads the host keys): sshd's settings were not checked", fix: "run `sudo twofoldctl doctor`")], nil)
        }
        let output: Subprocess.Output
        do { output = try Subprocess.run(argv) } catch {
            return ([.warning("sshd.not-checked", subject: argv.joined(separator: " "), error.message, fix: nil)], nil)
        }
        guard output.status == 0, !output.timedOut else { return ([refused(output)], nil) }
        let settings = SSHDSettings(output: output.stdout)
        return ([.ok("sshd.settings", subject: argv.joined(separator: " "), settings.summary)]
            + evaluate(settings) + SSHDMatchScan(file: configName).findings(), settings)
    }

    /// sshd refuses its own configuration: it would not start again.
    private func refused(_ output: Subprocess.Output) -> Finding {
        let reason = output.timedOut ? "did not finish within 20 s"
            : output.stderr.split(whereSeparator: \.isNewline).prefix(3).joined(separator: "; ")
        var fix = "correct \(configName) until `\(argv.joined(separator: " "))` succeeds, then `systemctl reload ssh`"
        if reason.contains("Disabled method") { fix = "set `KbdInteractiveAuthentication yes` (and `UsePAM yes`) in \(configName), or change AuthenticationMethods" }
        if reason.contains("no hostkeys") { fix = "create the host keys: `ssh-keygen -A` (or fix the HostKey lines in \(configName))" }
        return .error("sshd.config-invalid", subject: configName,
                      "sshd refuses this configuration (\(reason)): it would not start with it, so the next restart or reboot leaves no way in over ssh",
                      fix: fix)
    }

    func evaluate(_ settings: SSHDSettings) -> [Finding] {
        guard let pam else {
            return [.ok("sshd.pam", subject: pamFile, "sshd's PAM service does not run pam_twofold: ssh logins are not asked a code")]
        }
        guard settings.usePAM else {
            return [.error("sshd.usepam", subject: "\(configName): UsePAM",
                           "UsePAM no: sshd never runs the PAM stack of \(pamFile), so ssh logins skip the second factor",
                           fix: "`UsePAM yes` in \(configName), then `systemctl reload ssh`")]
        }
        var findings: [Finding] = []
        if !settings.keyboardInteractive {
            findings.append(.error("sshd.kbdinteractive", subject: "\(configName): KbdInteractiveAuthentication",
                                   "KbdInteractiveAuthentication no: sshd cannot ask the code, so users who must give one cannot log in over ssh (and key logins skip it)",
                                   fix: "`KbdInteractiveAuthentication yes` in \(configName), then `systemctl reload ssh`"))
        }
        return findings + methodFindings(settings, pam: pam)
    }
}
