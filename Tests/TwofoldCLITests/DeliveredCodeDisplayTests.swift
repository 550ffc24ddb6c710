import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// What `status`, `users` and `policy show|set` show of contacts and delivered codes (email, sms),
/// from a real twofoldd whose users have real contacts.
@Suite struct DeliveredCodeDisplayTests {
    static let noDaemon = ["--socket", "/nonexistent/twofold.sock"]

    @Test func statusAndUsersShowTheContactsMasked() throws {
        let fixture = try DeliveringDaemon()
        // alice: an app, a verified email and a phone waiting for its code; bob: only a verified
        // phone; carl: only an email waiting for its code.
        _ = try fixture.importApp("alice")
        try fixture.importContact("alice", "email", "alice@example.com")
        try fixture.addWaitingContact("alice", "--phone", "+49 151 1234 5678")
        try fixture.importContact("bob", "phone", "+14155552671")
        try fixture.addWaitingContact("carl", "--email", "carl@example.com")

        let status = try fixture.ctl(["status", "--user", "alice"])
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains("""
            2FA:            active (email, totp)
            Factors:        1: app
            Contacts:       email a***@example.com, phone +49 *** *** 78 (waiting for its code)

            """), "\(status)")
        let users = try fixture.ctl(["users"])
        #expect(users.status == 0, "\(users)")
        let lines = users.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(users)")
        #expect(lines.first?.hasPrefix("USER   ENROLLED  METHOD      FACTORS  KEYS  CONTACTS          REQUIRED") == true, "\(users)")
        #expect(lines.dropFirst().first?.hasPrefix("alice  active    email,totp  1        -     a***@example.com  no") == true, "\(users)")
        #expect(lines.dropFirst(2).first?.hasPrefix("bob    active    sms         0        -     +14 *** *** 71    no") == true, "\(users)")
        #expect(lines.dropFirst(3).first?.hasPrefix("carl   none      -           -        -     -                 no") == true, "\(users)")

        let bob = try fixture.ctl(["status", "--user", "bob"])
        #expect(bob.stdout.contains("2FA:            active (sms)\nFactors:        none besides the contacts\nContacts:       phone +14 *** *** 71\n"),
                "\(bob)")
    }

    @Test func policyShowsDeliveredCodesAndNotesNISTWhenEmailOrSMSIsAllowed() throws {
        let note = "Note: NIST SP 800-63B does not accept email as an out-of-band authenticator; it calls SMS (PSTN) restricted."
        let cases: [(arguments: [String], change: (inout PolicyDocument) -> Void, noted: Bool)] = [
            ([], { _ in }, false),
            (["--factor-kinds", "totp,email"], { $0.factorKinds = ["totp", "email"] }, true),
            (["--service-factor-kinds", "sshd=totp,sms"], { $0.serviceFactorKinds = ["sshd": ["totp", "sms"]] }, true),
            (["--host-factor-kinds", "kiosk-*=sms", "--delivered-code-digits", "8"],
             { $0.hostFactorKinds = ["kiosk-*": ["sms"]]; $0.deliveredCodeDigits = 8 }, true),
        ]
        for (arguments, change, noted) in cases {
            let daemon = try DaemonProcess()
            var expected = try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self)
            change(&expected)
            if !arguments.isEmpty {
                let set = try daemon.ctl(["policy", "set"] + arguments)
                #expect(set.status == 0, "\(arguments): \(set)")
            }
            let result = try daemon.ctl(["policy", "show"])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("Delivered codes:  \(expected.deliveredCodeDigits) digits (email, sms)\n"), "\(arguments): \(result)")
            #expect(result.stdout.hasSuffix("\n\n" + note + "\n") == noted, "\(arguments): \(result)")
            #expect(result.stdout.contains(note) == noted, "\(arguments): \(result)")
            let json = try daemon.ctl(["policy", "show", "--json"])
            #expect(!json.stdout.contains("NIST"))
            #expect(try json.json(PolicyDocument.self) == expected, "\(arguments)")
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

        let daemon = try DaemonProcess()
        let before = try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self)
        let arguments = ["policy", "set", "--factor-kinds", "totp,recovery,email", "--host-factor-kinds", "kiosk=sms", "--delivered-code-digits", "8"]
        let dry = try daemon.ctl(arguments + ["--dry-run"])
        #expect(dry.status == 0, "\(dry)")
        #expect(dry.stdout.contains("  Delivered codes: 6 digits (email, sms) -> 8 digits (email, sms)\n"), "\(dry)")
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self) == before, "a dry run changes nothing")
        // Applied, the daemon holds what the dry run proposed.
        let applied = try daemon.ctl(arguments)
        #expect(applied.status == 0, "\(applied)")
        let policy = try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self)
        #expect(policy.factorKinds == ["totp", "recovery", "email"])
        #expect(policy.hostFactorKinds == ["kiosk": ["sms"]])
        #expect(policy.deliveredCodeDigits == 8)
    }
}
