import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport

/// Several factors per user, through a real twofoldd over its socket.
@Suite("several factors per user")
struct MultiFactorTests {
    func add(_ daemon: DaemonProcess, _ user: String, name: String) throws -> TestAuthenticator {
        let app = TestAuthenticator(secret: try OTPSecret.generate(), parameters: OTPParameters())
        let response = try daemon.control(.importEnrollment(user: user, source: .uri(app.uri(account: user)), name: name))
        guard response == .imported(recoveryCodes: 0) else { throw HarnessError("import failed: \(response)") }
        return app
    }

    @Test("either factor logs in, replay is per factor, a wrong code names no factor, removing one leaves the other")
    func eitherWorksReplayPerFactorRemoveOne() throws {
        let daemon = try DaemonProcess()
        let phone = try add(daemon, "alice", name: "phone")
        let tablet = try add(daemon, "alice", name: "tablet")
        guard case .factors(let listed) = try daemon.control(.listFactors(user: "alice")) else { throw HarnessError("no factor list") }
        #expect(listed.map(\.name) == ["phone", "tablet"] && listed.allSatisfy { $0.kind == "totp" })

        #expect(try daemon.login("alice", answer: tablet.code()).verdict == .success)
        #expect(try daemon.login("alice", answer: phone.code()).verdict == .success, "the step used on the tablet is fresh on the phone")
        #expect(try daemon.login("alice", answer: phone.code()).verdict == .failure, "but not twice on the phone")

        // A code wrong for both: the same verdict and the same audit words whichever factor it was meant for.
        var wrong = 0
        let valid = Set((-12...12).flatMap { [phone.code(offset: $0), tablet.code(offset: $0)] })
        while valid.contains(String(format: "%06d", wrong)) { wrong += 1 }
        let outcome = try daemon.login("alice", answer: String(format: "%06d", wrong))
        #expect(outcome.verdict == .failure)
        guard case .audit(let entries) = try daemon.control(.audit(user: "alice", sinceMillis: nil, outcome: nil, limit: 10)) else {
            throw HarnessError("no audit")
        }
        let failure = try #require(entries.last { $0.outcome == "failure" })
        #expect(failure.reason == "wrong code")
        #expect(entries.filter { $0.outcome == "success" }.compactMap(\.reason).contains { $0.contains("factor 'tablet'") })

        #expect(try daemon.control(.removeFactor(user: "alice", name: "phone", code: nil)) == .ok)
        #expect(try daemon.login("alice", answer: phone.code(offset: 1)).verdict == .failure)
        #expect(try daemon.login("alice", answer: tablet.code(offset: 1)).verdict == .success)
        guard case .error(.notFound, _) = try daemon.control(.removeFactor(user: "alice", name: "phone", code: nil)) else {
            throw HarnessError("removing a removed factor must be notFound")
        }
    }

    @Test("failures count on the user: N factors do not give N times the guesses")
    func throttleIsPerUser() throws {
        let daemon = try DaemonProcess()
        let phone = try add(daemon, "bob", name: "phone")
        _ = try add(daemon, "bob", name: "tablet")
        guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("no policy") }
        policy.maxFailures = 2
        policy.throttleDelayMillis = 1
        policy.throttleMaxDelayMillis = 1
        #expect(try daemon.control(.policySet(policy)) == .ok)
        var wrong = 0
        while (-12...12).map({ phone.code(offset: $0) }).contains(String(format: "%06d", wrong)) { wrong += 1 }
        _ = try daemon.login("bob", answer: String(format: "%06d", wrong))
        _ = try daemon.login("bob", answer: String(format: "%06d", wrong))
        guard case .status(let status) = try daemon.control(.status(user: "bob")) else { throw HarnessError("no status") }
        #expect(status.lockedUntilMillis != nil, "two failures lock the user, whichever factor")
        #expect(try daemon.login("bob", answer: phone.code()).verdict != .success)
    }

    /// Runs enrollBegin, enrollVerify and enrollActivate for factor `name` (as root: no current code);
    /// returns the new factor's app and the recovery codes enrollVerify gave.
    func enroll(_ daemon: DaemonProcess, _ user: String, name: String?) throws -> (app: TestAuthenticator, recovery: [String]) {
        guard case .enrollment(let offer) = try daemon.control(.enrollBegin(user: user, currentCode: nil, name: name)) else {
            throw HarnessError("no offer")
        }
        let app = try TestAuthenticator(base32: offer.secretBase32)
        guard case .recoveryCodes(let recovery) = try daemon.control(.enrollVerify(user: user, codes: [app.code()])) else {
            throw HarnessError("verify failed")
        }
        #expect(try daemon.control(.enrollActivate(user: user)) == .ok)
        return (app, recovery)
    }

    @Test("a further factor keeps the saved recovery codes; a first one, or one for a user with none left, gets a fresh set")
    func furtherFactorKeepsRecoveryCodes() throws {
        let daemon = try DaemonProcess()
        let first = try enroll(daemon, "carl", name: nil)
        #expect(first.recovery.count == 10, "a first factor comes with a fresh set")
        #expect(try daemon.login("carl", answer: first.recovery[0]).verdict == .success)

        let second = try enroll(daemon, "carl", name: "tablet")
        #expect(second.recovery.isEmpty, "no new set: the saved one stays valid")
        guard case .factors(let listed) = try daemon.control(.listFactors(user: "carl")) else { throw HarnessError("no factor list") }
        #expect(listed.map(\.name) == ["app", "tablet", "recovery"])
        #expect(try daemon.status("carl").recoveryCodesLeft == 9)
        #expect(try daemon.login("carl", answer: first.recovery[1]).verdict == .success, "a code of the saved set still works")
        #expect(try daemon.login("carl", answer: second.app.code(offset: 1)).verdict == .success)

        // A new secret for an existing factor (same name) keeps the set too.
        let replaced = try enroll(daemon, "carl", name: "tablet")
        #expect(replaced.recovery.isEmpty)
        #expect(try daemon.login("carl", answer: first.recovery[2]).verdict == .success)
        #expect(try daemon.status("carl").recoveryCodesLeft == 7)

        // An imported factor brings no recovery codes: the next enrollment issues a set, as nothing is voided.
        _ = try add(daemon, "dora", name: "phone")
        #expect(try daemon.status("dora").recoveryCodesLeft == 0)
        let dora = try enroll(daemon, "dora", name: nil)
        #expect(dora.recovery.count == 10)
        #expect(try daemon.status("dora").recoveryCodesLeft == 10)
        guard case .audit(let entries) = try daemon.control(.audit(user: "carl", sinceMillis: nil, outcome: "verified", limit: 10)) else {
            throw HarnessError("no audit")
        }
        #expect(entries.compactMap(\.reason).filter { $0.contains("recovery codes are kept") }.count == 2, "\(entries)")
    }
}
