import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Enrollment, recovery codes and imports through the real daemon's control requests and login dialogs.
@Suite("enrollment and imports")
struct EnrollmentAndImportTests {
    @Test("enroll: pending changes nothing; verify gives recovery codes; activate turns 2FA on")
    func enrollFlow() throws {
        let daemon = try DaemonProcess()
        guard case .enrollment(let offer) = try daemon.control(.enrollBegin(user: "wendy", currentCode: nil)) else {
            Issue.record("no offer"); return
        }
        #expect(offer.uri.hasPrefix("otpauth://totp/"))
        #expect(offer.codesRequired == 1)
        let account = try TestAccount(base32: offer.secretBase32, user: "wendy")
        #expect(try daemon.login("wendy", answer: "000000").verdict == .ignore, "a pending enrollment changes nothing for logins")
        guard case .error(.invalidCode, _) = try daemon.control(.enrollVerify(user: "wendy", codes: [account.wrongCode()])) else {
            Issue.record("a wrong code must be refused"); return
        }
        guard case .recoveryCodes(let codes) = try daemon.control(.enrollVerify(user: "wendy", codes: [account.code()])) else {
            Issue.record("verify failed"); return
        }
        #expect(codes.count == 10)
        #expect(try daemon.login("wendy", answer: "000000").verdict == .ignore, "still nothing until the user confirms the codes are saved")
        #expect(try daemon.control(.enrollActivate(user: "wendy")) == .ok)
        guard case .status(let status) = try daemon.control(.status(user: "wendy")) else { Issue.record("status"); return }
        #expect(status.enrollment == "active")
        #expect(status.recoveryCodesLeft == 10)
        // The confirming code cannot be replayed at login; the next one works.
        #expect(try daemon.login("wendy", answer: account.code()).verdict == .failure)
        #expect(try daemon.login("wendy", answer: account.code(offset: 1)).verdict == .success)

        // A recovery code works once at the code prompt, and says how many are left.
        let used = try daemon.login("wendy", answer: codes[3])
        #expect(used.verdict == .success)
        #expect(used.transcript.contains { if case .info(let t) = $0 { t.contains("9 recovery codes left") } else { false } })
        #expect(try daemon.login("wendy", answer: codes[3]).verdict == .failure)
        #expect(try daemon.login("wendy", answer: codes[4].uppercased().replacingOccurrences(of: "-", with: " ")).verdict == .success,
                "typed forms of a recovery code are accepted")
    }

    @Test("re-enrolling an active user needs a current code; new recovery codes replace the old; disable follows policy")
    func reenrollRecoveryDisable() throws {
        let daemon = try DaemonProcess(extraConfig: "max_failures = 50")
        let xena = try daemon.provision("xena")
        // Root is an admin, so policy does not stop it; the current code is still required.
        guard case .error(.invalidCode, _) = try daemon.control(.regenerateRecoveryCodes(user: "xena", code: xena.wrongCode())) else {
            Issue.record("a wrong code must not give new recovery codes"); return
        }
        guard case .recoveryCodes(let first) = try daemon.control(.regenerateRecoveryCodes(user: "xena", code: xena.code())) else {
            Issue.record("regenerate"); return
        }
        guard case .recoveryCodes(let second) = try daemon.control(.regenerateRecoveryCodes(user: "xena", code: first[0])) else {
            Issue.record("a recovery code also proves the factor"); return
        }
        #expect(try daemon.login("xena", answer: first[1]).verdict == .failure, "the old set stopped working")
        #expect(try daemon.login("xena", answer: second[1]).verdict == .success)
        #expect(try daemon.control(.disable(user: "xena", code: second[2])) == .ok)
        guard case .status(let status) = try daemon.control(.status(user: "xena")) else { Issue.record("status"); return }
        #expect(status.enrollment == "none")
    }

    @Test("policy set and show round trip; an invalid policy is refused and changes nothing")
    func policyRoundTrip() throws {
        let daemon = try DaemonProcess()
        guard case .policy(var document) = try daemon.control(.policyShow) else { Issue.record("policy show"); return }
        #expect(document.require == "nobody")
        document.require = "everyone"
        document.services = ["login": "optional"]
        document.unenrolled = "grace"
        document.graceDays = 14
        #expect(try daemon.control(.policySet(document)) == .ok)
        guard case .policy(let stored) = try daemon.control(.policyShow) else { Issue.record("policy show"); return }
        #expect(stored == document)
        var bad = document
        bad.maxFailures = 0
        guard case .error(.invalidRequest, let message) = try daemon.control(.policySet(bad)) else { Issue.record("bad policy accepted"); return }
        #expect(message.contains("max failures"))
        guard case .policy(let after) = try daemon.control(.policyShow) else { Issue.record("policy show"); return }
        #expect(after == document)
        // The stored policy survives a restart and is in force: a grace notice at login.
        daemon.stop()
        try daemon.start()
        let outcome = try daemon.login("yusuf", answer: nil)
        #expect(outcome.verdict == .ignore)
        #expect(outcome.transcript.contains { if case .info(let t) = $0 { t.contains("14 days") } else { false } })
        #expect(try daemon.login("yusuf", answer: nil, service: "login").verdict == .ignore)
    }

    @Test("import from a file written by the real google-authenticator CLI, then log in with its code and a scratch code")
    func importGoogleAuthenticator() throws {
        let daemon = try DaemonProcess()
        let directory = try makeTemporaryDirectory("ga")
        let file = directory + "/google_authenticator"
        let made = try ChildProcess.run(["/usr/bin/google-authenticator", "--time-based", "--disallow-reuse", "--force", "--quiet",
                                         "--rate-limit=3", "--rate-time=30", "--window-size=3", "--emergency-codes=5", "--secret=\(file)"])
        #expect(made.status == 0, "\(made.output)")
        let contents = try String(contentsOfFile: file, encoding: .utf8)
        let lines = contents.split(separator: "\n").map(String.init)
        let scratch = lines.filter { $0.count == 8 && $0.allSatisfy(\.isNumber) }
        #expect(scratch.count == 5)
        #expect(try daemon.control(.importEnrollment(user: "zoe", source: .googleAuthenticator(contents))) == .imported(recoveryCodes: 5))
        let account = try TestAccount(base32: lines[0], user: "zoe")
        #expect(try daemon.login("zoe", answer: account.code()).verdict == .success)
        #expect(try daemon.login("zoe", answer: scratch[2]).verdict == .success)
        #expect(try daemon.login("zoe", answer: scratch[2]).verdict == .failure, "a scratch code works once")
    }

    @Test("import a users.oath line (pam_oath) and log in with a code from oathtool")
    func importUsersOath() throws {
        let daemon = try DaemonProcess()
        let hex = (0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let file = "# users.oath\nHOTP/T30/6\tother\t-\t00112233445566778899\nHOTP/T30/6\tamir\t-\t\(hex)\n"
        #expect(try daemon.control(.importEnrollment(user: "amir", source: .usersOath(file))) == .imported(recoveryCodes: 0))
        let code = try ChildProcess.run(["/usr/bin/oathtool", "--totp", "-"], input: hex + "\n").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(code.count == 6)
        #expect(try daemon.login("amir", answer: code).verdict == .success)
        guard case .error(.invalidRequest, _) = try daemon.control(.importEnrollment(user: "bea", source: .usersOath("HOTP/T30 bea 1234 \(hex)"))) else {
            Issue.record("a line with a PIN must be refused with a reason"); return
        }
    }

    @Test("members of admin_group may run admin requests; other users may not")
    func adminGroup() throws {
        // A real account in a real group, as an admin team would have (scripts/test-setup.sh makes them).
        let admin = try TestUser.admin
        let daemon = try DaemonProcess(extraConfig: "admin_group = \(TestUser.adminGroup)")
        _ = try daemon.provision("pat")
        let list = try FrameCodec.encode(.request(Array(try JSONEncoder().encode(ControlRequest.listUsers(after: nil, limit: 5)))))
        let asAdmin = try runAs(admin, socketPath: daemon.socketPath, frame: list)
        #expect(asAdmin.contains("\"user\":\"pat\""), "\(asAdmin)")
        let asUser = try runAsTestUser(socketPath: daemon.socketPath, frame: list)
        #expect(asUser.contains("permissionDenied"), "\(asUser)")
        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 50)) else {
            Issue.record("audit"); return
        }
        #expect(entries.contains { $0.action == "import" && $0.peerUID == 0 })
    }

    @Test("require = groups: a member of a required group is asked (here: refused, not enrolled), a non-member is not")
    func requiredGroupsAtLogin() throws {
        // The membership is looked up through NSS off the event loop; a real group with a real member
        // (scripts/test-setup.sh makes them).
        let member = try TestUser.groupMember
        let daemon = try DaemonProcess(extraConfig: "require = groups\nrequired_groups = \(TestUser.requiredGroup)")
        let asked = try daemon.login(member.name, answer: nil)
        #expect(asked.verdict == .denied, "\(asked)")
        #expect(try daemon.login(try TestUser.user.name, answer: nil).verdict == .ignore, "a real account outside the group")
        guard case .audit(let entries) = try daemon.control(.audit(user: member.name, sinceMillis: nil, outcome: "denied", limit: 5)) else {
            Issue.record("audit"); return
        }
        #expect(entries.contains { $0.reason?.contains("member of group \(TestUser.requiredGroup)") == true }, "\(entries)")
    }

    @Test("users may not run admin requests or act on other accounts")
    func userIsNotAdmin() throws {
        let daemon = try DaemonProcess()
        let me = try TestUser.user
        _ = try daemon.provision(me.name)
        for request in [ControlRequest.listUsers(after: nil, limit: 5), .policyShow, .unlock(user: "root"), .status(user: "root")] {
            let answer = try runAsTestUserRequest(socketPath: daemon.socketPath, request)
            #expect(answer.contains("permissionDenied"), "\(request): \(answer)")
        }
        // Its own status, found by its real uid (enrolled, so not a fresh account by accident).
        let own = try runAsTestUserRequest(socketPath: daemon.socketPath, .status(user: nil))
        #expect(own.contains("\"enrollment\":\"active\""), "\(own)")
        #expect(own.contains("\"user\":\"\(me.name)\""), "\(own)")
    }
}

extension TestAccount {
    /// An account from a base32 secret as an app would hold it (default TOTP parameters).
    init(base32: String, user: String) throws {
        self.init(user: user, app: try TestAuthenticator(base32: base32))
    }
}

/// Sends one control request from a process running as the test user; returns the JSON it got.
func runAsTestUserRequest(socketPath: String, _ request: ControlRequest) throws -> String {
    try runAsTestUser(socketPath: socketPath, frame: try FrameCodec.encode(.request(Array(try JSONEncoder().encode(request)))))
}
