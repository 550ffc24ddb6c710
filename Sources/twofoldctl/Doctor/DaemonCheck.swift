import TwofoldProtocol

/// The Daemon and Key sections: twofoldd reachable (`serverInfo`, an admin request), its version
/// against this twofoldctl's, and the sealing key file's mode and owner as the daemon sees them.
struct DaemonCheck {
    let session: DaemonSession
    /// The delivery service's configuration file (doctor's --deliver-config).
    var deliverConfig = "/etc/twofold/deliver.conf"

    struct Result {
        var findings: [Finding] = []
        var info: ServerInfo?
        /// ExitStatus.unreachable or .permissionDenied when the daemon could not be asked.
        var failure: CLIFailure?
    }

    func run() -> Result {
        var result = Result()
        let info: ServerInfo
        do throws(CLIFailure) {
            let response = try session.send(.serverInfo)
            guard case .serverInfo(let answer) = response else { throw unexpected(response) }
            info = answer
        } catch {
            result.failure = error
            result.findings.append(unreachable(error))
            return result
        }
        result.info = info
        result.findings.append(.ok("daemon.reachable", subject: session.socketPath, describe(info)))
        if info.version != TwofoldVersion.string {
            result.findings.append(.warning("daemon.version", subject: session.socketPath,
                                            "twofoldd is \(info.version) but this twofoldctl is \(TwofoldVersion.string): a daemon not restarted after an upgrade, or mixed installations",
                                            fix: "`systemctl restart twofoldd` after an upgrade, or install the same version of both"))
        }
        if let fleet = info.fleet { result.findings += TierCheck(session: session).findings(fleet) }
        // A relay holds no key and no store: nothing of either to check on this host.
        guard info.fleet?.role != "relay" else { return result }
        result.findings += keyFindings(info)
        result.findings += KeyRotationCheck(session: session).findings(info)
        result.findings += StoreCheck().findings(info)
        result.findings += BackupCheck(session: session).findings(info)
        if let delivery = info.delivery { result.findings += DeliveryCheck(configPath: deliverConfig).findings(delivery) }
        return result
    }

    private func unreachable(_ error: CLIFailure) -> Finding {
        if error.exitCode == ExitStatus.permissionDenied {
            return .error("daemon.permission", subject: session.socketPath,
                          "\(error.message): doctor asks twofoldd for its setup and the users it would refuse, which only root or the admin group may",
                          fix: "run it as root: `sudo twofoldctl doctor`")
        }
        return .error("daemon.reachable", subject: session.socketPath, error.message,
                      fix: "start it: `systemctl enable --now twofoldd.socket` (or point doctor at its socket with --socket); `journalctl -u twofoldd` says why it stopped")
    }

    private func describe(_ info: ServerInfo) -> String {
        var parts = ["twofoldd \(info.version) answers (uid \(info.daemonUID))"]
        parts.append("config \(info.configFile ?? "(built-in defaults)")")
        parts.append("database \(info.database)")
        parts.append("admin group \(info.adminGroup ?? "(none: root only)")")
        return parts.joined(separator: ", ")
    }

    /// The key file must be 0600 or 0400 and owned by the daemon's uid; a credential is fine.
    func keyFindings(_ info: ServerInfo) -> [Finding] {
        guard info.keySource == "file", let file = info.keyFile else {
            return [.ok("key.source", subject: info.keySource, "the sealing key comes from a systemd credential (LoadCredential): no key file to check")]
        }
        guard let mode = info.keyFileMode, let owner = info.keyFileOwnerUID else {
            return [.warning("key.mode", subject: file, "twofoldd cannot stat its key file", fix: "check that \(file) exists: `ls -l \(file)`")]
        }
        var findings: [Finding] = []
        let octal = "0" + String(mode, radix: 8)
        if mode & 0o077 != 0 {
            findings.append(.error("key.mode", subject: file,
                                   "the key file is mode \(octal): other users can read the key that opens every user's secret",
                                   fix: "`chmod 600 \(file)` (then consider the key exposed: rotate it and have users re-enroll if untrusted users had access)"))
        } else if mode != 0o600 && mode != 0o400 {
            findings.append(.warning("key.mode", subject: file, "the key file is mode \(octal); it should be 0600 or 0400", fix: "`chmod 600 \(file)`"))
        } else {
            findings.append(.ok("key.mode", subject: file, "mode \(octal)"))
        }
        if owner != info.daemonUID {
            findings.append(.error("key.owner", subject: file,
                                   "the key file is owned by uid \(owner), not by the daemon (uid \(info.daemonUID)): uid \(owner) can read or replace it",
                                   fix: "`chown \(info.daemonUID) \(file)`"))
        } else {
            findings.append(.ok("key.owner", subject: file, "owned by the daemon (uid \(owner))"))
        }
        return findings
    }
}
