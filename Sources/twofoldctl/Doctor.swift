import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Doctor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "doctor",
            abstract: "Check the daemon, PAM, sshd and the users before you log out (admins).",
            discussion: """
                Checks, and explains with a fix for each problem: twofoldd reachable and its version; \
                the key file's mode and owner; the store (SQLite, or PostgreSQL and its sslmode); when the policy allows codes by email \
                or text message, the delivery service and its commands; security keys (FIDO2): the daemon's rp id, what the policy \
                allows, the key models and their attestation CAs, and whether this host's pam_twofold.so was built with FIDO2 and \
                libfido2.so.1 loads; every PAM service file whose stacks run pam_twofold \
                (directly or through an included file such as common-auth): the module file, its \
                options, and what the auth stack does when the module succeeds, fails or returns \
                PAM_IGNORE (libpam's rules replayed); sshd's effective settings (sshd -T); SSH keys: \
                whether sshd asks 'twofoldctl authorized-keys %u' for keys, as the user twofoldd lets \
                ask (authorized_keys_user in twofoldd.conf), with PubkeyAuthOptions verify-required \
                when the policy requires it, and whether users' own authorized_keys files still count \
                (Match blocks with AuthorizedKeysFile none, confirmed with sshd -T -C for one member); \
                and the users the policy in force requires who would be refused at their next login.

                Run it as root: the daemon answers doctor's questions only for root or its admin \
                group, and sshd -T reads the host keys. PAM includes are read from --pam-dir.

                CHECKS (each finding: ok, warning or error; subject; what is wrong; the fix)
                  daemon.reachable daemon.permission daemon.version key.mode key.owner key.source
                  key.rotation store.sqlite store.postgresql store.tls
                  fleet.certificate fleet.tier fleet.break-glass fleet.hosts
                  delivery.off delivery.service delivery.command
                  fido2.rp-id fido2.policy fido2.models fido2.problem fido2.module fido2.library
                  pam.service pam.not-used pam.unreadable pam.module-missing pam.unknown-option
                  pam.nullok pam.bad-option pam.failmode-open pam.wrong-type pam.socket pam.syntax
                  pam.include-missing pam.never-succeeds pam.optional pam.sufficient pam.not-enforced
                  pam.skipped pam.before-unix pam.after-bad-password pam.ignore-falls-through
                  pam.bypass pam.twice pam.other-module-missing policy.service-without-pam
                  sshd.settings sshd.pam sshd.not-checked sshd.config-invalid sshd.usepam
                  sshd.kbdinteractive sshd.no-first-factor sshd.password sshd.authmethods sshd.match
                  sshkeys.command sshkeys.command-user sshkeys.verify-required sshkeys.authorized-keys-file
                  users.summary users.refused users.grace users.incomplete users.truncated
                  users.not-checked
                docs/cli.md says what each one means.

                --json prints {"ok", "exitCode", "findings": [{"check", "severity", "subject",
                "message", "fix"}], "services", "users", "daemon"}.

                EXIT STATUS
                  0  no error (warnings allowed)
                  1  at least one error: something that locks someone out, or leaves 2FA unenforced
                     where it is configured
                  3  twofoldd could not be reached (the PAM and sshd checks still ran and are shown)
                  4  permission denied: not root or the admin group (the local checks still ran)
                """
        )

        @Option(name: .customLong("pam-dir"), help: ArgumentHelp("The PAM configuration directory.", valueName: "dir"),
                completion: .directory)
        var pamDirectory = "/etc/pam.d"

        @Option(name: .customLong("module-dir"), help: ArgumentHelp(
            "Where module names without a path are found; may be repeated (default: /lib/<multiarch>/security, /usr/lib/<multiarch>/security, /lib/security, /usr/lib/security).",
            valueName: "dir"), completion: .directory)
        var moduleDirectories: [String] = []

        @Option(name: .customLong("sshd-config"), help: ArgumentHelp("The sshd configuration to check (sshd -T -f FILE; default: sshd's own).", valueName: "file"),
                completion: .file())
        var sshdConfig: String?

        @Option(name: .customLong("sshd"), help: ArgumentHelp("The sshd program (default: \(SSHDCheck.defaultSSHD)).", valueName: "path"), completion: .file())
        var sshd: String?

        @Flag(name: .customLong("no-sshd"), help: "Do not check sshd.")
        var noSSHD = false

        @Option(name: .customLong("deliver-config"), help: ArgumentHelp("The delivery service's configuration, for the commands of the channels the policy allows.", valueName: "file"),
                completion: .file())
        var deliverConfig = "/etc/twofold/deliver.conf"

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if noSSHD && (sshd != nil || sshdConfig != nil) { throw ValidationError("--no-sshd does not go with --sshd or --sshd-config.") }
        }

        func run() throws {
            let session = DaemonSession(options)
            defer { session.disconnect() }
            let daemon = DaemonCheck(session: session, deliverConfig: deliverConfig).run()
            let modules = moduleDirectories.isEmpty ? PAMModuleDirectories.defaults : moduleDirectories
            let pam = PAMCheck(directory: PAMConfigDirectory(path: pamDirectory), moduleDirectories: modules, doctorSocket: options.socketPath).run()
            // Through a relay the users are the servers' to survey (run doctor on a server for them).
            let users = daemon.failure == nil && daemon.info?.fleet?.role != "relay" ? UsersCheck(session: session).run() : nil
            var findings = daemon.findings + Fido2Check(moduleDirectories: modules).findings(daemon.info?.fido2) + pam.findings
            findings += sshdFindings(pam, policy: users?.policy, info: daemon.info)
            findings += CoverageCheck(pam: pam, pamDirectory: pamDirectory, policy: users?.policy, impact: users?.impact).findings()
            findings += users?.findings ?? []
            let failure = daemon.failure ?? users?.failure
            let services = pam.unreadable ? nil : pam.analyses.keys.sorted()
            let report = DoctorReport(findings: findings, services: services, users: users?.report, daemon: daemon.info,
                                      exitCode: exitCode(findings, failure))
            print(report)
            if let failure, report.exitCode == failure.exitCode { Output.error("twofoldctl: \(failure.message)") }
            if report.exitCode != ExitStatus.ok { throw ExitCode(report.exitCode) }
        }

        /// The sshd section, then the SSH keys section from the same `sshd -T`.
        private func sshdFindings(_ pam: PAMCheck.Result, policy: PolicyDocument?, info: ServerInfo?) -> [Finding] {
            guard !noSSHD else { return [.ok("sshd.not-checked", subject: "sshd", "not checked (--no-sshd)")] }
            let check = SSHDCheck(sshd: sshd ?? SSHDCheck.defaultSSHD, sshdGiven: sshd != nil, config: sshdConfig,
                                  pam: pam.analyses["sshd"], pamFile: PAMConfigDirectory(path: pamDirectory).filePath("sshd"))
            let (findings, settings) = check.run()
            guard let settings else { return findings }
            // What the daemon says it serves; from its config file when it is older than SSH keys.
            let keysUser: String?? = info.map { info in
                info.sshKeys.map { .some($0.authorizedKeysUser) } ?? SSHKeysCheck.authorizedKeysUser(configFile: info.configFile)
            } ?? nil
            let verifyRequired = info?.sshKeys?.verifyRequired ?? policy?.sshVerifyRequired
            return findings + SSHKeysCheck(settings: settings, sshdArgv: check.argv, configName: check.configName,
                                           verifyRequired: verifyRequired, keysUser: keysUser).findings()
        }

        /// 3 when the daemon was unreachable, 4 when it refused; else 1 for any error, 0 without.
        private func exitCode(_ findings: [Finding], _ failure: CLIFailure?) -> Int32 {
            if let failure, failure.exitCode == ExitStatus.unreachable || failure.exitCode == ExitStatus.permissionDenied {
                return failure.exitCode
            }
            return findings.contains { $0.severity == .error } ? ExitStatus.failure : ExitStatus.ok
        }

        private func print(_ report: DoctorReport) {
            if options.json {
                Output.json(report)
                return
            }
            let sshdHeading = noSSHD ? nil : ([sshd ?? SSHDCheck.defaultSSHD, "-T"] + (sshdConfig.map { ["-f", $0] } ?? [])).joined(separator: " ")
            let using = report.services.map { $0.isEmpty ? "; no service runs pam_twofold" : "; pam_twofold in " + $0.joined(separator: ", ") } ?? ""
            Output.raw(report.text(headings: ["Daemon": options.socketPath, "PAM": pamDirectory + using, "sshd": sshdHeading].compactMapValues { $0 }))
        }
    }
}
