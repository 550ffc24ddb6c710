import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `twofoldctl doctor` against a real twofoldd, PAM files written by the test (checked, where the
/// claim is about libpam, against real libpam through pam_driver), real `sshd -T -f` runs, and the
/// users the daemon's policy would refuse. Each mistake is named by its check code; the exit status
/// is checked every time.
@Suite struct DoctorTests {
    @Test("a correct setup: no error, no warning, exit 0, and libpam agrees that a user without 2FA passes")
    func correctSetup() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        try fixture.file("login", ["@include common-auth", "# the second factor, after the password", fixture.twofold(), "@include common-account"])
        let config = try fixture.sshdConfig("sshd_config", ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
                                                            "AuthenticationMethods publickey,keyboard-interactive"])
        let (status, report) = try fixture.report(["--sshd-config", config])
        #expect(status == 0, "\(report)")
        #expect(report.ok)
        #expect(report.problems.isEmpty, "\(report)")
        #expect(Set(report.named("pam.service").map(\.subject)) == ["service sshd", "service login"], "\(report)")
        #expect(report.services == ["login", "sshd"])
        #expect(report.has("daemon.reachable", "ok") && report.has("key.mode", "ok") && report.has("key.owner", "ok"))
        #expect(report.named("sshd.settings").first?.message.contains("AuthenticationMethods publickey,keyboard-interactive") == true)
        #expect(try fixture.libpam("sshd", user: TestUser.user.name) == "0 PAM_SUCCESS")

        let (text, _) = try fixture.doctor(["--sshd-config", config], json: false)
        #expect(text.status == 0, "\(text)")
        for heading in ["Daemon (\(fixture.daemon.socketPath))", "Key", "PAM (\(fixture.pamDir); pam_twofold in login, sshd)", "sshd (/usr/sbin/sshd -T -f \(config))", "Users"] {
            #expect(text.stdout.contains("\n\(heading)\n") || text.stdout.hasPrefix("\(heading)\n"), "\(heading) missing:\n\(text.stdout)")
        }
        #expect(text.stdout.contains("  ok    service sshd: runs pam_twofold at \(fixture.pamDir)/sshd:2"), "\(text.stdout)")
        #expect(text.stdout.hasSuffix("No problems found.\n"), "\(text.stdout)")
    }

    @Test("the store's backups: none on record is a warning with the command; one today is ok; one 8 days old is a warning again")
    func backups() throws {
        let fixture = try DoctorFixture(backedUp: false)
        try fixture.file("sshd", fixture.exampleSSHD)
        let (status, none) = try fixture.report()
        #expect(status == 0, "a warning, not an error: \(none)")
        let missing = try #require(none.named("backup.none").first, "\(none)")
        #expect(missing.severity == "warning" && missing.fix?.contains("twofoldctl backup --output") == true, "\(missing)")

        let taken = try fixture.daemon.ctl(["backup", "--output", fixture.directory + "/b.sqlite"])
        #expect(taken.status == 0, "\(taken)")
        let listed = try fixture.daemon.ctl(["audit", "--action", "backup", "--json"])
        #expect(listed.status == 0 && listed.stdout.components(separatedBy: "\"action\" : \"backup\"").count == 2, "one record, of backups only: \(listed)")
        let (_, today) = try fixture.report()
        #expect(today.has("backup.age", "ok") && today.named("backup.age").first?.message.contains("today") == true, "\(today)")
        #expect(today.named("backup.none").isEmpty)

        // The same record eight days older (the daemon stopped, its audit row moved back), and a
        // newer success of another kind (an import) that must not count as a backup.
        _ = try fixture.daemon.importUsers("z", count: 1, codes: 1)
        _ = fixture.daemon.stop()
        try SQLiteEdit.execute(path: fixture.daemon.sqlitePath, sql: "UPDATE audit SET time = time - 8 * 86400000 WHERE action = 'backup'")
        try fixture.daemon.start()
        let (_, old) = try fixture.report()
        let stale = try #require(old.named("backup.age").first, "\(old)")
        #expect(stale.severity == "warning" && stale.message.contains("8 days ago"), "\(stale)")
    }

    @Test("sufficient: a wrong code logs in (libpam agrees), named pam.sufficient, exit 1")
    func sufficient() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold("sufficient"), "auth optional pam_permit.so"])
        let (status, report) = try fixture.report()
        #expect(status == 1)
        let finding = try #require(report.named("pam.sufficient").first, "\(report)")
        #expect(finding.severity == "error")
        #expect(finding.subject == "service sshd, \(fixture.pamDir)/sshd:1")
        #expect(finding.message.contains("a wrong code (PAM_AUTH_ERR)"), "\(finding.message)")
        #expect(finding.fix?.contains("auth required \(PAMBuild.module) socket=\(fixture.daemon.socketPath)") == true, "\(finding)")
        // The claim, with real libpam: an enrolled user and a wrong code get in.
        let app = try fixture.enroll(TestUser.user.name)
        #expect(try fixture.libpam("sshd", user: TestUser.user.name, answers: [app.wrongCode()]) == "0 PAM_SUCCESS")

        let (text, _) = try fixture.doctor(json: false)
        #expect(text.status == 1)
        #expect(text.stdout.contains("  FAIL  service sshd, \(fixture.pamDir)/sshd:1: `sufficient` ignores"), "\(text.stdout)")
        #expect(text.stdout.contains("\n        fix: make the line `auth required"), "\(text.stdout)")
        #expect(text.stdout.contains("[pam.sufficient]"))
        #expect(text.stdout.hasSuffix("(exit 1).\n"), "\(text.stdout)")
    }

    @Test("sufficient before the password: a right code alone logs in", arguments: ["sufficient", "[success=done default=die]"])
    func codeAlone(control: String) throws {
        let fixture = try DoctorFixture()
        try fixture.file("login", [fixture.twofold(control), "@include common-auth"])
        let (status, report) = try fixture.report()
        #expect(status == 1, "\(report)")
        let check = control == "sufficient" ? "pam.sufficient" : "pam.before-unix"
        let finding = try #require(report.named(check).first { $0.message.contains("a right code alone logs in") }, "\(report)")
        #expect(finding.severity == "error")
        #expect(finding.message.contains("before pam_unix.so (\(fixture.pamDir)/common-auth:1)"), "\(finding.message)")
    }

    @Test("optional: a failure is ignored, named pam.optional, exit 1")
    func optional() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sudo", ["@include common-auth", fixture.twofold("optional")])
        let (status, report) = try fixture.report()
        #expect(status == 1)
        #expect(report.has("pam.optional", "error"), "\(report)")
        #expect(report.named("pam.optional").first?.message.contains("`optional` ignores the module's failure") == true)
    }

    @Test("the code before the password: a warning (exit 0); its success ending the stack is an error")
    func beforeUnix() throws {
        let fixture = try DoctorFixture()
        try fixture.file("login", [fixture.twofold(), "@include common-auth"])
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        let finding = try #require(report.named("pam.before-unix").first, "\(report)")
        #expect(finding.severity == "warning")
        #expect(finding.message.contains("the code is asked before the password (\(fixture.pamDir)/common-auth:1)"))
        #expect(report.named("pam.after-bad-password").isEmpty)
    }

    @Test("a password check that does not end the stack: the code is asked after a wrong password")
    func afterBadPassword() throws {
        let fixture = try DoctorFixture()
        try fixture.file("login", ["auth required pam_unix.so", fixture.twofold()])
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        #expect(report.has("pam.after-bad-password", "warning"), "\(report)")
    }

    @Test("PAM_IGNORE with nothing else to succeed: users without 2FA are refused (libpam agrees), exit 1")
    func ignoreFallsThrough() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold(), "account required pam_permit.so"])
        let (status, report) = try fixture.report()
        #expect(status == 1)
        let finding = try #require(report.named("pam.ignore-falls-through").first, "\(report)")
        #expect(finding.severity == "error")
        #expect(finding.message.contains("PAM_PERM_DENIED"))
        #expect(finding.fix?.contains("add `auth optional pam_permit.so` right after \(fixture.pamDir)/sshd:1") == true, "\(finding)")
        #expect(try fixture.libpam("sshd", user: TestUser.user.name) == "6 PAM_PERM_DENIED")

        // The fix doctor gives, applied: no error, and libpam lets the user in.
        try fixture.file("sshd", [fixture.twofold(), "auth optional pam_permit.so", "account required pam_permit.so"])
        let (after, fixed) = try fixture.report()
        #expect(after == 0, "\(fixed)")
        #expect(try fixture.libpam("sshd", user: TestUser.user.name) == "0 PAM_SUCCESS")
    }

    @Test("options the module refuses: nullok, another module's option, a malformed value (libpam: PAM_SERVICE_ERR), exit 1")
    func options() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold("required", "nullok secret=/home/alice/.google_authenticator failmode=opne"), "auth optional pam_permit.so"])
        let (status, report) = try fixture.report()
        #expect(status == 1)
        let nullok = try #require(report.named("pam.nullok").first, "\(report)")
        #expect(nullok.severity == "error" && nullok.subject == "\(fixture.pamDir)/sshd:1")
        #expect(nullok.message.contains("PAM_SERVICE_ERR") && nullok.message.contains("every login through sshd fails"), "\(nullok.message)")
        #expect(nullok.fix?.contains("`auth required \(PAMBuild.module) socket=\(fixture.daemon.socketPath)`") == true, "\(nullok)")
        #expect(report.named("pam.unknown-option").contains { $0.message.contains("`secret` is an option of pam_google_authenticator") }, "\(report)")
        #expect(report.named("pam.bad-option").contains { $0.message.contains("failmode=opne") }, "\(report)")
        #expect(try fixture.libpam("sshd", user: TestUser.user.name) == "3 PAM_SERVICE_ERR")
    }

    @Test("every option the module accepts (read from pam_twofold.c) is one doctor accepts: its copy of the check cannot drift")
    func everyModuleOptionIsAccepted() throws {
        let fixture = try DoctorFixture()
        // A valid value for each option that takes one; a new option in the module without a value
        // here fails the test, so the copy in Doctor/TwofoldModuleOptions.swift gets looked at.
        let samples = ["socket=": nil, "timeout=": "10", "dialog_timeout=": "900", "daemon_user=": "root"] as [String: String?]
        let literals = try PAMModuleSource.optionLiterals()
        #expect(literals.contains("failmode=open") && literals.contains("timeout="), "the extractor is broken: \(literals)")
        var options: [String] = []
        for literal in literals where literal != "socket=" {
            guard literal.hasSuffix("=") else { options.append(literal); continue }
            let sample = try #require(samples[literal] ?? nil, "no sample value for the module's option \(literal)")
            options.append(literal + sample)
        }
        for option in options {
            try fixture.file("sshd", [fixture.twofold("required", option), "auth optional pam_permit.so"])
            let (_, report) = try fixture.report()
            let refused = report.findings.filter { ["pam.unknown-option", "pam.bad-option", "pam.nullok"].contains($0.check) }
            #expect(refused.isEmpty, "doctor refuses \(option), which the module accepts: \(refused.map(\.message))")
        }
    }

    @Test("another module of the stack not where doctor looks: named, so the finding it causes can be traced")
    func otherModuleMissing() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        // Only the directory with pam_twofold: pam_permit.so is not found there.
        let result = try fixture.daemon.ctl(["doctor", "--pam-dir", fixture.pamDir, "--module-dir", fixture.moduleDir, "--no-sshd", "--json"])
        let report = try result.json(DoctorOutput.self)
        let finding = try #require(report.named("pam.other-module-missing").first, "\(report)")
        #expect(finding.severity == "warning" && finding.message.contains("pam_permit.so") && finding.fix?.contains("--module-dir") == true, "\(finding)")
        // With the system's directory too it is found, and nothing is said.
        let (_, full) = try fixture.report()
        #expect(full.named("pam.other-module-missing").isEmpty, "\(full)")
    }

    @Test("the module file missing: named pam.module-missing with what it does, exit 1; a name found through --module-dir is fine")
    func moduleMissing() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold(module: "/usr/lib/twofold-doctor-none/pam_twofold.so"), "auth optional pam_permit.so"])
        let (status, report) = try fixture.report()
        #expect(status == 1)
        let finding = try #require(report.named("pam.module-missing").first, "\(report)")
        #expect(finding.severity == "error")
        #expect(finding.message.contains("/usr/lib/twofold-doctor-none/pam_twofold.so") && finding.message.contains("every login through sshd fails"),
                "\(finding.message)")

        try fixture.file("sshd", [fixture.twofold(module: "pam_twofold.so"), "auth optional pam_permit.so"])
        let (found, resolved) = try fixture.report()
        #expect(found == 0, "\(resolved)")
        #expect(resolved.named("pam.module-missing").isEmpty)
    }

    @Test("common-auth carrying pam_twofold (pam-auth-update): every service that includes it uses it; failmode=open is a warning")
    func includedCommonAuth() throws {
        let fixture = try DoctorFixture()
        var commonAuth = DoctorFixture.commonAuth
        commonAuth.insert(fixture.twofold(), at: 3)
        try fixture.file("common-auth", commonAuth)
        try fixture.file("sudo", ["#%PAM-1.0", "@include common-auth", "@include common-account"])
        try fixture.file("chsh", ["auth sufficient pam_rootok.so", "@include common-auth"])
        try fixture.file("cron", ["account required pam_permit.so"])
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        #expect(Set(report.named("pam.service").map(\.subject)) == ["service sudo", "service chsh"], "\(report)")
        #expect(report.problems.isEmpty, "\(report)")

        commonAuth[3] = fixture.twofold("required", "failmode=open")
        try fixture.file("common-auth", commonAuth)
        let (open, weakened) = try fixture.report()
        #expect(open == 0, "\(weakened)")
        let finding = try #require(weakened.named("pam.failmode-open").first, "\(weakened)")
        #expect(finding.severity == "warning")
        #expect(finding.subject == "\(fixture.pamDir)/common-auth:4")
        #expect(finding.message.contains("chsh, sudo"), "\(finding.message)")
        #expect(weakened.named("pam.failmode-open").count == 1, "one finding per line, not per service")
        #expect(weakened.named("pam.service").isEmpty, "a service with a problem is not reported as passing")
        #expect(weakened.services == ["chsh", "sudo"], "but it is listed as using the module")
    }

    @Test("no service runs the module: a warning, an error once the policy requires someone")
    func notUsed() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", ["@include common-auth", "@include common-account"])
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        #expect(report.has("pam.not-used", "warning"), "\(report)")
        #expect(try fixture.daemon.ctl(["policy", "set", "--require", "everyone", "--yes"]).status == 0)
        let (required, again) = try fixture.report()
        #expect(required == 1, "\(again)")
        #expect(again.has("pam.not-used", "error"), "\(again)")
    }

    @Test("the policy requires a service whose PAM file does not run the module")
    func policyServiceWithoutPAM() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        try fixture.file("sudo", ["@include common-auth"])
        // (enroll at login: the users it now requires are not refused, which would be errors of their own)
        #expect(try fixture.daemon.ctl(["policy", "set", "--service", "sudo=required", "--unenrolled", "enroll"]).status == 0)
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        #expect(report.named("policy.service-without-pam").first?.subject == "\(fixture.pamDir)/sudo", "\(report)")
    }
}

/// The other PAM mistakes doctor names, each in a service file of its own.
extension DoctorTests {
    struct PAMCase: CustomTestStringConvertible, Sendable {
        var name: String
        /// The sshd file; TWOFOLD stands for the module's line (`auth required <module> socket=...`).
        var lines: [String]
        var commonAuthWithModule = false
        var check: String
        var severity: String
        var testDescription: String { name }
    }

    static let pamCases: [PAMCase] = [
        PAMCase(name: "the module in the account stack", lines: ["TWOFOLD", "auth optional pam_permit.so", "account required MODULE"],
                check: "pam.wrong-type", severity: "error"),
        PAMCase(name: "an @include of a missing file", lines: ["TWOFOLD", "auth optional pam_permit.so", "@include common-nothing"],
                check: "pam.include-missing", severity: "error"),
        PAMCase(name: "a control libpam cannot read", lines: ["TWOFOLD", "auth requird pam_permit.so"], check: "pam.syntax", severity: "error"),
        PAMCase(name: "a password check that ends the stack before the module",
                lines: ["auth sufficient pam_unix.so", "TWOFOLD", "auth optional pam_permit.so"], check: "pam.skipped", severity: "error"),
        PAMCase(name: "the module twice (common-auth has it too)", lines: ["@include common-auth", "TWOFOLD"], commonAuthWithModule: true,
                check: "pam.twice", severity: "warning"),
        PAMCase(name: "another module's success ends the stack first",
                lines: ["auth [success=done default=ignore] pam_succeed_if.so user ingroup nosuchgroup", "@include common-auth", "TWOFOLD"],
                check: "pam.bypass", severity: "warning"),
        PAMCase(name: "a stack nothing passes", lines: ["TWOFOLD", "auth required pam_deny.so"], check: "pam.never-succeeds", severity: "error"),
    ]

    @Test("other PAM mistakes, each named", arguments: pamCases)
    func pamMistake(_ pamCase: PAMCase) throws {
        let fixture = try DoctorFixture()
        if pamCase.commonAuthWithModule {
            var commonAuth = DoctorFixture.commonAuth
            commonAuth.insert(fixture.twofold(), at: 3)
            try fixture.file("common-auth", commonAuth)
        }
        try fixture.file("sshd", pamCase.lines.map {
            $0 == "TWOFOLD" ? fixture.twofold() : $0.replacingOccurrences(of: "MODULE", with: PAMBuild.module)
        })
        let (status, report) = try fixture.report()
        #expect(report.has(pamCase.check, pamCase.severity), "\(report)")
        #expect(status == (report.problems.contains { $0.severity == "error" } ? 1 : 0))
        #expect(status == (pamCase.severity == "error" ? 1 : 0), "\(report)")
        for finding in report.named(pamCase.check) { #expect(finding.fix?.isEmpty == false, "\(finding)") }
    }
}

/// sshd's effective settings, from a real `sshd -T -f CONFIG` (with a host key made for the test).
extension DoctorTests {
    struct SSHDCase: CustomTestStringConvertible, Sendable {
        var name: String
        var lines: [String]
        /// The sshd PAM stack: the example (public key first, no password in it), or password and code.
        var passwordStack = false
        var expected: [(check: String, severity: String)]
        var status: Int32
        var testDescription: String { name }
    }

    static let sshdCases: [SSHDCase] = [
        SSHDCase(name: "UsePAM no", lines: ["UsePAM no", "AuthenticationMethods publickey,keyboard-interactive"],
                 expected: [("sshd.usepam", "error")], status: 1),
        SSHDCase(name: "KbdInteractiveAuthentication no", lines: ["UsePAM yes", "KbdInteractiveAuthentication no", "PasswordAuthentication no"],
                 expected: [("sshd.kbdinteractive", "error"), ("sshd.authmethods", "warning")], status: 1),
        SSHDCase(name: "AuthenticationMethods unset, public keys on, a stack without a password",
                 lines: ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no", "PubkeyAuthentication yes"],
                 expected: [("sshd.authmethods", "warning"), ("sshd.no-first-factor", "error")], status: 1),
        SSHDCase(name: "AuthenticationMethods unset, public keys on, password and code in the stack",
                 lines: ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no", "PubkeyAuthentication yes"],
                 passwordStack: true, expected: [("sshd.authmethods", "warning")], status: 0),
        SSHDCase(name: "PasswordAuthentication yes with a stack that checks no password",
                 lines: ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication yes", "AuthenticationMethods publickey,keyboard-interactive password"],
                 expected: [("sshd.password", "error")], status: 1),
        SSHDCase(name: "keyboard-interactive required but disabled: sshd refuses the configuration",
                 lines: ["UsePAM yes", "KbdInteractiveAuthentication no", "AuthenticationMethods publickey,keyboard-interactive"],
                 expected: [("sshd.config-invalid", "error")], status: 1),
        SSHDCase(name: "a Match block that turns passwords back on",
                 lines: ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
                         "AuthenticationMethods publickey,keyboard-interactive", "Match User alice", "  PasswordAuthentication yes"],
                 expected: [("sshd.match", "warning")], status: 0),
        SSHDCase(name: "correct", lines: ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
                                          "AuthenticationMethods publickey,keyboard-interactive"],
                 expected: [], status: 0),
    ]

    @Test("sshd -T: each mistake named, with the exit status", arguments: sshdCases)
    func sshd(_ sshdCase: SSHDCase) throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", sshdCase.passwordStack ? ["@include common-auth", fixture.twofold()] : fixture.exampleSSHD)
        let config = try fixture.sshdConfig("sshd_config", sshdCase.lines)
        let (status, report) = try fixture.report(["--sshd-config", config])
        #expect(status == sshdCase.status, "\(report)")
        let found = report.problems.filter { $0.check.hasPrefix("sshd.") }.map { "\($0.check) \($0.severity)" }
        #expect(Set(found) == Set(sshdCase.expected.map { "\($0.check) \($0.severity)" }), "\(report)")
        #expect(report.problems.filter { !$0.check.hasPrefix("sshd.") }.isEmpty, "only sshd problems: \(report)")
        for finding in report.problems where finding.check.hasPrefix("sshd.") {
            #expect(finding.fix?.isEmpty == false, "every problem has a fix: \(finding)")
        }
    }

    @Test("keyboard-interactive alone with a stack that lets a code alone in (and refuses users without 2FA)")
    func codeAloneOverSSH() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold()])
        let config = try fixture.sshdConfig("sshd_config", ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no",
                                                            "PubkeyAuthentication no"])
        let (status, report) = try fixture.report(["--sshd-config", config])
        #expect(status == 1)
        let finding = try #require(report.named("sshd.no-first-factor").first, "\(report)")
        #expect(finding.message.hasSuffix("enrolled users get in with a code alone"), "\(finding.message)")
        #expect(report.has("pam.ignore-falls-through", "error"))
    }

    @Test("sshd not installed where --sshd points: a note, not an error; --no-sshd skips it")
    func sshdAbsent() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        let (status, report) = try fixture.report(["--sshd", fixture.directory + "/no-sshd-here"])
        #expect(status == 0, "\(report)")
        #expect(report.has("sshd.not-checked", "warning"), "\(report)")
        let (skipped, again) = try fixture.report(["--no-sshd"])
        #expect(skipped == 0)
        #expect(again.named("sshd.not-checked").first?.message == "not checked (--no-sshd)")
    }
}

/// The users the policy in force would refuse, the daemon's key file, an unreachable daemon and a
/// caller who is not an admin.
extension DoctorTests {
    @Test("a required user without a factor is refused (exit 1) until enrolled (exit 0)")
    func refusedUsers() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        #expect(try fixture.daemon.ctl(["policy", "set", "--require", "groups", "--required-groups", TestUser.requiredGroup,
                                        "--unenrolled", "deny", "--yes"]).status == 0)
        let member = try TestUser.groupMember.name
        let (status, report) = try fixture.report()
        #expect(status == 1, "\(report)")
        let refused = try #require(report.named("users.refused").first { $0.subject == member }, "\(report)")
        #expect(refused.severity == "error")
        #expect(refused.message.contains("group \(TestUser.requiredGroup)"), "\(refused.message)")
        #expect(refused.fix?.contains("twofoldctl import \(member) --uri -") == true)
        #expect(refused.fix?.contains("twofoldctl user exempt \(member)") == true)
        let users = try #require(report.users)
        #expect(users.refusedUsers.map(\.user) == [member])
        #expect(users.sources.contains { $0.hasPrefix("group \(TestUser.requiredGroup) (") }, "\(users.sources)")

        _ = try fixture.enroll(member)
        let (after, enrolled) = try fixture.report()
        #expect(after == 0, "\(enrolled)")
        #expect(enrolled.named("users.refused").isEmpty)
        #expect(enrolled.users?.refused == 0)
        #expect(enrolled.users?.required == 1)
    }

    @Test("a required user in a grace period: a warning with the end")
    func graceUsers() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        #expect(try fixture.daemon.ctl(["policy", "set", "--require", "groups", "--required-groups", TestUser.requiredGroup,
                                        "--unenrolled", "grace", "--grace-days", "14"]).status == 0)
        let member = try TestUser.groupMember.name
        // The grace starts at the first login that finds the user required.
        _ = try LoginDialog.run(socketPath: fixture.daemon.socketPath, start: AuthStart(user: member, service: "sshd")) { _, _ in nil }
        let (status, report) = try fixture.report()
        #expect(status == 0, "\(report)")
        let grace = try #require(report.named("users.grace").first { $0.subject == member }, "\(report)")
        #expect(grace.severity == "warning")
        #expect(grace.message.contains("let in without a code until"), "\(grace.message)")
        #expect(report.users?.graceUsers.map(\.user) == [member])
    }

    @Test("a key file others can read is an error")
    func keyMode() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        let key = fixture.daemon.directory + "/state/twofold.key"
        #expect(chmod(key, 0o644) == 0)
        let (status, report) = try fixture.report()
        #expect(status == 1, "\(report)")
        let finding = try #require(report.named("key.mode").first, "\(report)")
        #expect(finding.severity == "error" && finding.subject == key)
        #expect(finding.message.contains("mode 0644"))
        #expect(finding.fix?.hasPrefix("`chmod 600 \(key)`") == true)
    }

    @Test("twofoldd unreachable: exit 3, and the PAM checks still ran")
    func unreachable() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", [fixture.twofold("sufficient"), "auth optional pam_permit.so"])
        fixture.daemon.stop()
        let (result, report) = try fixture.doctor()
        #expect(result.status == 3, "\(result)")
        let output = try #require(report, "\(result)")
        #expect(output.exitCode == 3 && !output.ok)
        #expect(output.has("daemon.reachable", "error"), "\(output)")
        #expect(output.has("pam.sufficient", "error"), "the local checks ran: \(output)")
        #expect(output.named("pam.socket").contains { $0.message.contains("no socket at \(fixture.daemon.socketPath)") }, "\(output)")
        #expect(output.users == nil)
        #expect(result.stdout.contains("\"users\" : null") && result.stdout.contains("\"daemon\" : null"), "null, not left out: \(result.stdout)")
        #expect(result.stderr.contains("cannot reach twofoldd"), "\(result)")
    }

    @Test("not an admin: exit 4 with the way to run it, and the PAM checks still ran")
    func notAdmin() throws {
        let fixture = try DoctorFixture()
        try fixture.file("sshd", fixture.exampleSSHD)
        let (result, report) = try fixture.doctor(as: try TestUser.user)
        #expect(result.status == 4, "\(result)")
        let output = try #require(report, "\(result)")
        let denied = try #require(output.named("daemon.permission").first, "\(output)")
        #expect(denied.fix == "run it as root: `sudo twofoldctl doctor`")
        #expect(output.has("pam.service", "ok"), "the local checks ran: \(output)")
        #expect(result.stderr.contains("root or membership of the admin group"), "\(result)")
    }
}
