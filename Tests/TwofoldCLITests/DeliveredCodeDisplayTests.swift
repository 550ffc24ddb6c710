import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// What `status`, `users` and `policy show|set` show of contacts and delivered codes (email, sms),
/// against `FakeDaemon`'s canned documents.
@Suite struct DeliveredCodeDisplayTests {
    static let noDaemon = ["--socket", "/nonexistent/twofold.sock"]

    @Test func statusAndUsersShowTheContactsMasked() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .status: return .status(Fixtures.status("alice", enrollment: "active", method: "email,totp", factors: ["app"],
                                                      contacts: [Fixtures.email, Fixtures.phone]))
            case .listUsers(let after, _):
                guard after == nil else { return .users([]) }
                return .users([Fixtures.status("alice", enrollment: "active", method: "email,totp", factors: ["app"], contacts: [Fixtures.email, Fixtures.phone]),
                               Fixtures.status("bob", enrollment: "active", method: "sms", contacts: [
                                   ContactInfo(user: "bob", channel: "sms", masked: "+1 *** *** 71", verified: true, addedMillis: 0, verifiedMillis: 0)]),
                               Fixtures.status("carl", enrollment: "none")])
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let status = try daemon.ctl(["status"])
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains("""
            2FA:            active (email, totp)
            Factors:        1: app
            Contacts:       email a***@example.com, phone +49 *** *** 78 (waiting for its code)

            """), "\(status)")
        let users = try daemon.ctl(["users"])
        #expect(users.status == 0, "\(users)")
        let lines = users.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("USER   ENROLLED  METHOD      FACTORS  CONTACTS          REQUIRED") == true, "\(users)")
        #expect(lines.dropFirst().first?.hasPrefix("alice  active    email,totp  1        a***@example.com  no") == true, "\(users)")
        #expect(lines.dropFirst(2).first?.hasPrefix("bob    active    sms         0        +1 *** *** 71     no") == true, "\(users)")
        #expect(lines.dropFirst(3).first?.hasPrefix("carl   none      -           -        -                 no") == true, "\(users)")

        let onlyContacts = try FakeDaemon { _ in .status(Fixtures.status("bob", enrollment: "active", method: "sms", contacts: [
            ContactInfo(user: "bob", channel: "sms", masked: "+1 *** *** 71", verified: true, addedMillis: 0, verifiedMillis: 0)])) }
        let bob = try onlyContacts.ctl(["status"])
        #expect(bob.stdout.contains("2FA:            active (sms)\nFactors:        none besides the contacts\nContacts:       phone +1 *** *** 71\n"),
                "\(bob)")
    }

    @Test func policyShowsDeliveredCodesAndNotesNISTWhenEmailOrSMSIsAllowed() throws {
        let note = "Note: NIST SP 800-63B does not accept email as an out-of-band authenticator; it calls SMS (PSTN) restricted."
        for (policy, noted) in [(PolicyDocument(), false), (PolicyDocument(factorKinds: ["totp", "email"]), true),
                                (PolicyDocument(serviceFactorKinds: ["sshd": ["totp", "sms"]]), true),
                                (PolicyDocument(hostFactorKinds: ["kiosk-*": ["sms"]], deliveredCodeDigits: 8), true)] {
            let daemon = try FakeDaemon { _ in .policy(policy) }
            let result = try daemon.ctl(["policy", "show"])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("Delivered codes:  \(policy.deliveredCodeDigits) digits (email, sms)\n"), "\(result)")
            #expect(result.stdout.hasSuffix("\n\n" + note + "\n") == noted, "\(result)")
            #expect(result.stdout.contains(note) == noted, "\(result)")
            let json = try daemon.ctl(["policy", "show", "--json"])
            #expect(!json.stdout.contains("NIST"))
            #expect(try json.json(PolicyDocument.self) == policy)
        }
    }

    @Test func policySetTakesEmailSMSAndTheDeliveredCodeDigits() throws {
        for (arguments, message) in [(["--delivered-code-digits", "9"], "--delivered-code-digits must be 6, 7 or 8."),
                                     (["--delivered-code-digits", "5"], "--delivered-code-digits must be 6, 7 or 8."),
                                     (["--factor-kinds", "totp,fax"], "--factor-kinds takes some of totp, hotp, recovery, email, sms")] {
            let result = try CLI.run(["policy", "set"] + arguments + Self.noDaemon)
            #expect(result.status == 2 && result.stderr.contains(message), "\(arguments): \(result)")
        }
        let userKinds = try CLI.run(["user", "factor-kinds", "alice", "totp,sms"] + Self.noDaemon)
        #expect(userKinds.status == 3, "\(userKinds)")

        let impact = PolicyImpact(usersConsidered: 0, sources: [], notes: [], requiredBefore: 0, requiredAfter: 0, newlyRequired: 0,
                                  noLongerRequired: 0, refused: 0, newlyRefused: 0, grace: 0, users: [], truncated: false)
        let daemon = try FakeDaemon { request in
            switch request {
            case .policyShow: return .policy(PolicyDocument())
            case .policyImpact: return .policyImpact(impact)
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let dry = try daemon.ctl(["policy", "set", "--factor-kinds", "totp,recovery,email", "--host-factor-kinds", "kiosk=sms",
                                  "--delivered-code-digits", "8", "--dry-run"])
        #expect(dry.status == 0, "\(dry)")
        #expect(dry.stdout.contains("  Delivered codes: 6 digits (email, sms) -> 8 digits (email, sms)\n"), "\(dry)")
        guard case .policyImpact(let proposed?) = daemon.requests.last else { Issue.record("no impact asked: \(daemon.requests)"); return }
        #expect(proposed.factorKinds == ["totp", "recovery", "email"])
        #expect(proposed.hostFactorKinds == ["kiosk": ["sms"]])
        #expect(proposed.deliveredCodeDigits == 8)
    }
}

/// Documents of users with contacts for the CLI tests.
enum Fixtures {
    /// 2026-01-01 00:00:00 UTC (the CLI runs with TZ=UTC).
    static let newYear: Int64 = 1_767_225_600_000

    static func status(_ user: String, enrollment: String, method: String? = nil, factors: [String] = [],
                       contacts: [ContactInfo]? = nil, required: Bool = false) -> UserStatus {
        UserStatus(user: user, enrollment: enrollment, method: method, required: required,
                   requiredBecause: required ? "policy: everyone is required" : "policy: nobody is required",
                   recoveryCodesLeft: 0, failures: 0, lockedUntilMillis: nil, lastSuccessMillis: nil, factors: factors, contacts: contacts)
    }

    static let email = ContactInfo(user: "alice", channel: "email", masked: "a***@example.com", verified: true,
                                   addedMillis: newYear, verifiedMillis: newYear + 60_000)
    static let phone = ContactInfo(user: "alice", channel: "sms", masked: "+49 *** *** 78", verified: false, addedMillis: newYear + 3_600_000)
}
