import Foundation
import Testing
import TwofoldTestSupport
import TwofoldCore
#if canImport(Glibc)
import Glibc
#endif

/// pam_twofold.so through real libpam (pam_start_confdir, via pam/tests/pam_driver) against a real twofoldd.
@Suite("PAM module with the real daemon")
struct PAMWithDaemonTests {
    @Test("each verdict of a real daemon maps to its PAM return code")
    func returnCodes() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess(extraConfig: "max_failures = 2")
        let pam = try PAMConfig(socket: daemon.socketPath)
        let kim = try daemon.provision("kim")

        let success = try pam.authenticate("kim", answers: [kim.code()])
        #expect(success.result == "PAM_SUCCESS", "\(success.lines)")
        #expect(success.lines.contains("ECHO_OFF Verification code: "))

        #expect(try pam.authenticate("kim", answers: [kim.code()]).result == "PAM_AUTH_ERR", "replay")
        // PAM_IGNORE from the only module of a stack is libpam's "no decision": PAM_PERM_DENIED.
        // Followed by `optional pam_permit.so` (the documented sshd stack) it lets the user in, unprompted.
        let ignoredAlone = try pam.authenticate("nobody-enrolled", answers: [])
        #expect(ignoredAlone.result == "PAM_PERM_DENIED")
        #expect(!ignoredAlone.lines.contains { $0.hasPrefix("ECHO_OFF") })
        let permitting = try PAMConfig(socket: daemon.socketPath, thenPermit: true)
        let ignored = try permitting.authenticate("nobody-enrolled", answers: [])
        #expect(ignored.result == "PAM_SUCCESS")
        #expect(!ignored.lines.contains { $0.hasPrefix("ECHO_OFF") })
        let kip = try daemon.provision("kip")
        #expect(try permitting.authenticate("kip", answers: [kip.wrongCode()]).result == "PAM_AUTH_ERR", "pam_permit does not override a failure")
        let locked = try pam.authenticate("kim", answers: [kim.wrongCode()])
        #expect(locked.result == "PAM_MAXTRIES", "second failure with max_failures = 2: \(locked.lines)")
        #expect(locked.lines.contains { $0.hasPrefix("ERROR ") && $0.contains("locked") })

        let lee = try daemon.provision("lee")
        #expect(try pam.authenticate("lee", answers: [], closeInput: true).result == "PAM_CONV_ERR")
        #expect(try pam.authenticate("lee", answers: [lee.code()]).result == "PAM_SUCCESS")

        daemon.stop()
        #expect(try pam.authenticate("lee", answers: []).result == "PAM_AUTHINFO_UNAVAIL", "daemon down, fail closed")
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open", thenPermit: true)
        #expect(try open.authenticate("lee", answers: []).result == "PAM_SUCCESS", "daemon down, fail open: the module steps aside")
        let openAlone = try PAMConfig(socket: daemon.socketPath, options: "failmode=open")
        #expect(try openAlone.authenticate("lee", answers: []).result == "PAM_PERM_DENIED", "fail open is PAM_IGNORE, not PAM_SUCCESS")
    }

    @Test("the real module logs in and declares its capabilities (BINARY_PAYLOAD+FIDO2 when built with libfido2, else none): the daemon records them as sent, not as absent")
    func moduleDeclaresCapabilities() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess()
        let pam = try PAMConfig(socket: daemon.socketPath)
        let kai = try daemon.provision("kai")
        let outcome = try pam.authenticate("kai", answers: [kai.code()])
        #expect(outcome.result == "PAM_SUCCESS", "\(outcome.lines)")
        #expect(outcome.lines.contains("ECHO_OFF Verification code: "))
        #expect(try pam.authenticate("kai", answers: [kai.wrongCode()]).result == "PAM_AUTH_ERR")
        // The daemon's record of each AUTH_START (its debug log): the module sent CAPABILITIES.
        let declared = PAMBuild.fido2 ? "capabilities=BINARY_PAYLOAD+FIDO2" : "capabilities=none"
        let lines = daemon.log.split(separator: "\n").filter { $0.contains("login dialog") && $0.contains(" user=kai") }
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.allSatisfy { $0.contains(declared) && $0.contains("service=twofold-test") }, "\(lines)")
    }

    @Test("a required user who has not enrolled is refused with a message")
    func requiredNotEnrolled() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess(extraConfig: "require = everyone")
        let pam = try PAMConfig(socket: daemon.socketPath)
        let outcome = try pam.authenticate("mallory", answers: [])
        #expect(outcome.result == "PAM_AUTH_ERR")
        #expect(outcome.lines.contains { $0.hasPrefix("ERROR ") && $0.contains("not set up") })
    }

    @Test("a screen locker running as the user may ask about itself, not about others")
    func screenLocker() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess()
        let pam = try PAMConfig(socket: daemon.socketPath)
        let me = try TestUser.user, other = try TestUser.other
        let own = try daemon.provision(me.name)
        _ = try daemon.provision(other.name)
        // Both real, enrolled accounts: only the peer's real uid tells them apart.
        let asSelf = try pam.authenticate(me.name, answers: [own.code()], as: me)
        #expect(asSelf.result == "PAM_SUCCESS", "\(asSelf.lines)")
        let asOther = try pam.authenticate(other.name, answers: ["000000"], as: me)
        #expect(asOther.result == "PAM_AUTH_ERR", "\(asOther.lines)")
        #expect(!asOther.lines.contains { $0.hasPrefix("ECHO_OFF") }, "no prompt for a foreign user")
    }
}

/// A PAM configuration directory with one service that uses the module against `socket`.
struct PAMConfig {
    let directory: String
    let service = "twofold-test"

    init(socket: String, options: String = "", thenPermit: Bool = false) throws {
        directory = try makeTemporaryDirectory("pamconf")
        var stack = "auth required \(PAMBuild.module) socket=\(socket) timeout=5 \(options)\n"
        if thenPermit { stack += "auth optional pam_permit.so\n" }
        try stack.write(toFile: directory + "/" + service, atomically: true, encoding: .utf8)
        chmod(directory + "/" + service, 0o644)
    }

    struct Outcome {
        var lines: [String]
        var result: String
    }

    /// Runs pam_authenticate for `user`, feeding `answers` one per prompt; in a process running as
    /// `account` (a screen locker) when given, as root (sshd, login) otherwise.
    func authenticate(_ user: String, answers: [String], closeInput: Bool = false, as account: TestUser? = nil,
                      environment: [String: String]? = nil) throws -> Outcome {
        var argv = [PAMBuild.driver, directory, service, user]
        if let account { argv = account.setpriv + argv }
        let input = closeInput ? "" : answers.map { $0 + "\n" }.joined()
        let (_, output) = try run(argv, environment: environment, input: input)
        let lines = output.split(separator: "\n").map(String.init)
        let result = lines.last { $0.hasPrefix("RESULT ") }?.split(separator: " ").last.map(String.init) ?? "NO RESULT: \(output)"
        return Outcome(lines: lines, result: result)
    }
}
