import Foundation
import Testing
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport

/// `twofoldctl contact ...`. Parsing and validation run without a daemon (a good value gets as far
/// as connecting: exit 3); the rest runs the real twofoldctl against a real twofoldd that sends
/// its codes through a real twofold-deliver (`DeliveringDaemon`), as root and as the test user.
@Suite struct ContactTests {
    static let noDaemon = ["--socket", "/nonexistent/twofold.sock"]

    /// What ContactAddress says of `value`: the text the CLI must repeat.
    func invalid(_ value: String, _ channel: DeliveryChannel) -> String? {
        do {
            _ = try ContactAddress.normalize(value, channel: channel)
            return nil
        } catch {
            return (error as? ContactAddress.Invalid)?.description
        }
    }

    // MARK: Validation, no daemon

    @Test func addChecksTheAddressBeforeAskingTheDaemon() throws {
        let badPhone = try CLI.run(["contact", "add", "--phone", "0151 1234567"] + Self.noDaemon)
        #expect(badPhone.status == 2, "\(badPhone)")
        #expect(badPhone.stderr.hasPrefix("""
            Error: '0151 1234567' is not a phone number twofoldd accepts: a phone number is written in international (E.164) \
            form: '+', the country code and the number, e.g. +4915112345678.

            """), "\(badPhone)")
        #expect(badPhone.stderr.contains(try #require(invalid("0151 1234567", .sms))))
        let short = try CLI.run(["contact", "add", "--phone", "+49 151"] + Self.noDaemon)
        #expect(short.status == 2 && short.stderr.contains("Error: '+49 151' is not a phone number twofoldd accepts: "
                                                           + (invalid("+49 151", .sms) ?? "?") + "."), "\(short)")

        for (value, channel) in [("alice", DeliveryChannel.email), ("alice@@example.com", .email), ("al ice@example.com", .email),
                                 ("alice@localhost", .email), ("alice@-example.com", .email), ("+0123456789", .sms), ("+49 151 12x45678", .sms)] {
            let option = channel == .email ? "--email" : "--phone"
            let result = try CLI.run(["contact", "add", option, value] + Self.noDaemon)
            let reason = try #require(invalid(value, channel), "\(value) should be refused by the core")
            let what = channel == .email ? "an email address" : "a phone number"
            #expect(result.status == 2, "\(value): \(result)")
            #expect(result.stderr.contains("Error: '\(value)' is not \(what) twofoldd accepts: \(reason)."), "\(value): \(result)")
        }
        // What the core accepts gets as far as connecting.
        for arguments in [["--email", "Alice.B+2fa@Example.COM"], ["--phone", "+49 (151) 1234-5678"], ["--phone", "+14155552671"]] {
            let result = try CLI.run(["contact", "add"] + arguments + Self.noDaemon)
            #expect(result.status == 3, "\(arguments): \(result)")
        }
    }

    @Test func exactlyOneChannel() throws {
        for arguments in [["contact", "add"], ["contact", "add", "--email", "a@example.com", "--phone", "+4915112345678"],
                          ["contact", "remove"], ["contact", "remove", "--email", "--phone"],
                          ["contact", "remove", "--email", "--phone", "a@example.com"]] {
            let result = try CLI.run(arguments + Self.noDaemon)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.hasPrefix("Error: Give exactly one of --email and --phone.\n"), "\(arguments): \(result)")
        }
        let wrongKind = try CLI.run(["contact", "remove", "--phone", "alice@example.com"] + Self.noDaemon)
        #expect(wrongKind.status == 2 && wrongKind.stderr.contains("is not a phone number twofoldd accepts"), "\(wrongKind)")
        let both = try CLI.run(["contact", "list", "--all", "--user", "bob"] + Self.noDaemon)
        #expect(both.status == 2 && both.stderr.contains("--all and --user do not go together."), "\(both)")
        for (arguments, status) in [(["contact", "remove", "--phone"], 3), (["contact", "remove", "--email", "a@example.com"], 3),
                                    (["contact", "send-code", "--channel", "fax"], 2), (["contact", "send-code", "--channel", "phone"], 3),
                                    (["contact", "import", "-", "--batch", "0"], 2), (["contact", "import", "-", "--batch", "1001"], 2)] {
            let result = try CLI.run(arguments + Self.noDaemon, input: "")
            #expect(result.status == Int32(status), "\(arguments): \(result)")
        }
    }

    /// Lines the CLI cannot use are reported by number without asking the daemon (nothing is sent
    /// when no line is good, so no daemon is needed here).
    @Test func importReportsBadLinesByNumber() throws {
        let list = """
            # user channel address
            alice email alice

            bob phone 0151 1234567
            carl fax +4915112345678
            dora
            \(String(repeating: "e", count: 257)) email e@example.com
            \tfrank  email   frank@-example.com

            """
        let result = try CLI.run(["contact", "import", "-"] + Self.noDaemon, input: list)
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout == "Imported 0 verified contacts; 6 lines refused.\n", "\(result)")
        #expect(result.stderr == """
            line 2 (alice): \(invalid("alice", .email)!)
            line 4 (bob): \(invalid("0151 1234567", .sms)!)
            line 5 (carl): 'fax' is not a channel: email or phone
            line 6 (dora): expected a user name, email or phone, and the address or number
            line 7: a user name has at most 256 bytes
            line 8 (frank): \(invalid("frank@-example.com", .email)!)

            """, "\(result)")

        struct Refused: Decodable { var line: Int; var user: String?; var error: String }
        struct Summary: Decodable { var ok: Bool; var imported: Int; var refused: [Refused] }
        let json = try CLI.run(["contact", "import", "-", "--json"] + Self.noDaemon, input: list)
        #expect(json.status == 1, "\(json)")
        let summary = try json.json(Summary.self)
        #expect(!summary.ok && summary.imported == 0)
        #expect(summary.refused.map(\.line) == [2, 4, 5, 6, 7, 8])
        #expect(summary.refused.map(\.user) == ["alice", "bob", "carl", "dora", nil, "frank"])

        let missing = try CLI.run(["contact", "import", "/nonexistent/list"] + Self.noDaemon)
        #expect(missing.status == 1 && missing.stderr.contains("cannot read /nonexistent/list"), "\(missing)")
    }

    // MARK: Against a real twofoldd and twofold-deliver

    @Test func importSendsNormalisedContactsInBatchesAndMapsTheDaemonsRefusals() throws {
        let fixture = try DeliveringDaemon()
        // A user name with a control character passes twofoldctl's check (its length) and is
        // refused by twofoldd, for that item only.
        let mallory = "mal\u{1}lory"
        let list = """
            alice email Alice@Example.COM
            bob   phone +49 (151) 1234-5678
            # a comment
            carl  sms   +14155552671
            bad   email nope
            \(mallory) email m@example.com
            dora  email dora@example.com

            """
        let result = try fixture.ctl(["contact", "import", "-", "--batch", "2"], input: list)
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout == "Imported 4 verified contacts; 2 lines refused.\n", "\(result)")
        #expect(result.stderr == "line 5 (bad): \(invalid("nope", .email)!)\nline 6 (\(DisplayText.escaped(mallory))): invalid user name\n",
                "\(result)")
        // Five good lines in batches of two: three requests, as the daemon counted them.
        #expect(try fixture.requests("contactImport") == 3)

        // Stored verified, as twofoldctl normalised them: a code sent to each goes to that address.
        let all = try fixture.ctl(["contact", "list", "--all", "--json"]).json([ContactInfo].self)
        #expect(all.map { "\($0.user) \($0.channel) \($0.masked)" } == [
            "alice email A***@example.com", "bob sms +49 *** *** 78", "carl sms +14 *** *** 71", "dora email d***@example.com",
        ], "\(all)")
        #expect(all.allSatisfy { $0.verified })
        for (user, channel, destination) in [("alice", "email", "Alice@example.com"), ("bob", "sms", "+4915112345678"),
                                             ("carl", "sms", "+14155552671"), ("dora", "email", "dora@example.com")] {
            let sent = try fixture.ctl(["contact", "send-code", "--user", user, "--channel", channel])
            #expect(sent.status == 0, "\(user): \(sent)")
            let message = fixture.delivery.messages(channel).last ?? ""
            #expect(message.contains("To: \(destination)\n") && message.contains("User: \(user)\n"), "\(user): \(message)")
        }
        #expect(try fixture.audit("alice").contains { $0.action == "contact" && $0.reason?.contains("imported as verified") == true })

        let good = try fixture.ctl(["contact", "import", "-"], input: "erin email erin@example.com\n")
        #expect(good.status == 0 && good.stdout == "Imported 1 verified contact.\n" && good.stderr.isEmpty, "\(good)")
        #expect(try fixture.contacts("erin").map(\.masked) == ["e***@example.com"])
    }

    /// The daemon refuses a request frame over 64 KiB: twofoldctl cuts a long list into requests
    /// under it even when the batch size alone would not.
    @Test func importKeepsEachRequestUnderTheFrameBound() throws {
        let fixture = try DeliveringDaemon(kinds: nil)
        // 600 long addresses: about 100 KB of JSON, more than the 64 KiB frame; the default batch
        // (500) alone would send 500 of them (some 85 KB) in one request.
        let local = String(repeating: "x", count: 60)
        let list = (0..<600).map { "user\($0) email \(local)\($0)@\(String(repeating: "d", count: 60)).example.com" }.joined(separator: "\n")
        let result = try fixture.ctl(["contact", "import", "-"], input: list + "\n")
        #expect(result.status == 0 && result.stdout == "Imported 600 verified contacts.\n", "\(result)\n\(fixture.daemon.log.suffix(2000))")
        #expect(try fixture.requests("contactImport") >= 3)
        let all = try fixture.ctl(["contact", "list", "--all", "--json"]).json([ContactInfo].self)
        #expect(all.count == 600 && Set(all.map(\.user)).count == 600 && all.allSatisfy { $0.verified })
    }

    /// The test user, who has an app, adds a phone number: asked the app's current code, the
    /// code to confirm it arrives by text message, `contact verify` takes it, and `contact list`,
    /// `status` and `users` show the verified number masked.
    @Test func addAsksACurrentCodeOfAUserWithAFactorAndSaysWhereTheCodeWent() throws {
        let fixture = try DeliveringDaemon(extraConfig: "delivered_code_validity = 600")
        let me = try TestUser.user
        let app = try fixture.importApp(me.name)
        let result = try fixture.ctl(["contact", "add", "--phone", "+49 151 1234 5678"], input: Authenticator.spaced(app.code()) + "\n", as: me)
        #expect(result.status == 0, "\(result)\n\(fixture.daemon.log.suffix(2000))")
        #expect(result.stdout == """
            A code was sent by text message to +49 *** *** 78; it is valid for 10 minutes.
            Confirm the contact with 'twofoldctl contact verify' and that code; until then it is not used.

            """, "\(result)")
        #expect(result.stderr.contains("Adding phone number +49 *** *** 78 for \(me.name): a code goes to it to confirm it."), "\(result)")
        #expect(result.stderr.contains("Current code (any factor, a recovery code, or one from 'twofoldctl contact send-code'): "))
        // The app's code was checked (and used) for this request; the number waits for its code.
        #expect(try fixture.audit(me.name).contains { $0.action == "verify" && $0.service == "twofoldctl:contact" && $0.outcome == "success" })
        let waiting = try fixture.contacts(me.name)
        #expect(waiting.map(\.masked) == ["+49 *** *** 78"] && waiting.allSatisfy { !$0.verified && $0.channel == "sms" }, "\(waiting)")
        let messages = fixture.delivery.messages("sms")
        #expect(messages.count == 1 && messages[0].contains("To: +4915112345678\n") && messages[0].contains("User: \(me.name)\n"), "\(messages)")
        let code = try #require(fixture.delivery.lastCode("sms"))

        // The code from the message confirms it.
        let verified = try fixture.ctl(["contact", "verify"], input: code + "\n", as: me)
        #expect(verified.status == 0, "\(verified)")
        #expect(verified.stdout == "Verified the phone +49 *** *** 78 of \(me.name): logins may use a code sent to it where the policy allows 'sms'.\n",
                "\(verified)")
        let listed = try fixture.ctl(["contact", "list"], as: me)
        #expect(listed.status == 0, "\(listed)")
        let row = try #require(listed.stdout.split(separator: "\n").dropFirst().first, "\(listed)")
        #expect(row.split(separator: " ").prefix(4) == [Substring(me.name), "sms", "+49", "***"] && row.contains("+49 *** *** 78  verified"), "\(listed)")
        #expect(!listed.stdout.contains("4915112345678"), "the number is masked: \(listed)")
        let status = try fixture.ctl(["status"], as: me)
        #expect(status.stdout.contains("2FA:            active (sms, totp)\nFactors:        1: app\nContacts:       phone +49 *** *** 78\n"), "\(status)")
        let users = try fixture.ctl(["users"])
        #expect(users.stdout.split(separator: "\n").first?.contains("FACTORS  KEYS  CONTACTS        REQUIRED") == true, "\(users)")
        #expect(users.stdout.split(separator: "\n").contains { $0.hasPrefix(me.name) && $0.contains(" 1        -     +49 *** *** 78  no") }, "\(users)")

        // No code given: cancelled (exit 7), nothing added, nothing sent.
        let cancelled = try fixture.ctl(["contact", "add", "--email", "me@example.com"], input: "", as: me)
        #expect(cancelled.status == 7, "\(cancelled)")
        #expect(try fixture.contacts(me.name).map(\.channel) == ["sms"])
        #expect(fixture.delivery.messages("email").isEmpty)

        // Root is not asked; --json says what to run next.
        let root = try fixture.ctl(["contact", "add", "--email", "Bob@Example.com", "--user", "bob", "--json"], input: "")
        #expect(root.status == 0, "\(root)")
        struct Sent: Decodable { var ok: Bool; var user: String; var contact: ContactInfo; var message: String; var next: String? }
        let sent = try root.json(Sent.self)
        #expect(sent.ok && sent.user == "bob" && sent.contact.codeValidSeconds == 600 && sent.contact.masked == "B***@example.com")
        #expect(sent.next == "twofoldctl contact verify --user bob")
        #expect(try fixture.contacts("bob").map { "\($0.channel) \($0.masked) \($0.verified)" } == ["email B***@example.com false"])
        let mail = fixture.delivery.messages("email")
        #expect(mail.count == 1 && mail[0].contains("To: Bob@example.com\n") && mail[0].contains("User: bob\n"), "\(mail)")
    }

    @Test func addAsksNoCodeOfAUserWithoutAFactor() throws {
        let fixture = try DeliveringDaemon(extraConfig: "delivered_code_validity = 90")
        let me = try TestUser.user
        let result = try fixture.ctl(["contact", "add", "--email", "t@example.com"], input: "", as: me)
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        #expect(result.stdout.hasPrefix("A code was sent by email to t***@example.com; it is valid for 90 seconds.\n"), "\(result)")
        #expect(try fixture.contacts(me.name).map { "\($0.channel) \($0.masked) \($0.verified)" } == ["email t***@example.com false"])
        #expect(fixture.delivery.messages("email").first?.contains("To: t@example.com\n") == true)
        #expect(!(try fixture.audit(me.name)).contains { $0.action == "verify" }, "no current code was checked")
    }

    @Test func verifyReadsTheCodeFromStandardInputNeverFromArguments() throws {
        let fixture = try DeliveringDaemon()
        try fixture.importContact("alice", "email", "alice@example.com")
        try fixture.addWaitingContact("alice", "--phone", "+49 151 1234 5678")
        let code = try #require(fixture.delivery.lastCode("sms"))
        // Typed with a dash and a space, as a person may.
        let typed = "\(code.prefix(2))-\(code.dropFirst(2).prefix(2)) \(code.dropFirst(4))"
        let result = try fixture.ctl(["contact", "verify", "--user", "alice"], input: typed + "\n")
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("Code sent to +49 *** *** 78: "), "\(result)")
        #expect(result.stdout == "Verified the phone +49 *** *** 78 of alice: logins may use a code sent to it where the policy allows 'sms'.\n")
        #expect(try fixture.contacts("alice").map { "\($0.channel) \($0.verified)" } == ["email true", "sms true"])
        #expect(try fixture.audit("alice").contains { $0.action == "contact" && $0.outcome == "success" && $0.reason == "sms +49 *** *** 78 verified" })

        // Nothing waits: said before reading a code, and the daemon counts no wrong code.
        try fixture.importContact("nobody-waits", "email", "nw@example.com")
        let nothing = try fixture.ctl(["contact", "verify", "--user", "nobody-waits"], input: "123456\n")
        #expect(nothing.status == 1, "\(nothing)")
        #expect(nothing.stderr.contains("no contact of nobody-waits is waiting for its code; add one with: twofoldctl contact add"))
        #expect(!nothing.stderr.contains("Code sent to"), "\(nothing)")
        #expect(try fixture.status("nobody-waits").failures == 0)
        #expect(!(try fixture.audit("nobody-waits")).contains { $0.outcome == "failure" })

        let extra = try fixture.ctl(["contact", "verify", "123456"])
        #expect(extra.status == 2, "a code is never an argument: \(extra)")
    }

    @Test func listIsATableOfMaskedContactsOrJSON() throws {
        let fixture = try DeliveringDaemon()
        // alice: an email confirmed with its code (verified after it was added), a phone still waiting;
        // bob: an imported email (verified when added).
        try fixture.addWaitingContact("alice", "--email", "alice@example.com")
        let code = try #require(fixture.delivery.lastCode("email"))
        #expect(try fixture.ctl(["contact", "verify", "--user", "alice"], input: code + "\n").status == 0)
        try fixture.addWaitingContact("alice", "--phone", "+49 151 1234 5678")
        try fixture.importContact("bob", "email", "bob@example.org")

        let json = try fixture.ctl(["contact", "list", "--all", "--json"])
        #expect(json.status == 0, "\(json)")
        let contacts = try json.json([ContactInfo].self)
        #expect(contacts.map { "\($0.user) \($0.channel) \($0.masked) \($0.verified)" } == [
            "alice email a***@example.com true", "alice sms +49 *** *** 78 false", "bob email b***@example.org true",
        ], "\(contacts)")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss xxx"
        func time(_ millis: Int64?) -> String { millis.map { formatter.string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "-" }
        let (a, p, b) = (contacts[0], contacts[1], contacts[2])
        let all = try fixture.ctl(["contact", "list", "--all"])
        #expect(all.status == 0, "\(all)")
        #expect(all.stdout == """
            USER   CHANNEL  CONTACT           STATUS    ADDED                       VERIFIED
            alice  email    a***@example.com  verified  \(time(a.addedMillis))  \(time(a.verifiedMillis))
            alice  sms      +49 *** *** 78    waiting   \(time(p.addedMillis))  -
            bob    email    b***@example.org  verified  \(time(b.addedMillis))  \(time(b.verifiedMillis))

            """, "\(all)")
        #expect(!all.stdout.contains("alice@example.com") && !all.stdout.contains("4915112345678"), "masked: \(all)")
        #expect(b.verifiedMillis == b.addedMillis && (a.verifiedMillis ?? 0) >= a.addedMillis)
        let none = try fixture.ctl(["contact", "list", "--user", "carl"])
        #expect(none.status == 0 && none.stdout == "No contacts for carl.\n", "\(none)")
    }

    /// The test user, whose only factor is a verified email, removes contacts with codes from
    /// `contact send-code`: a waiting phone (2FA stays on), then the email (the last factor: 2FA off).
    @Test func removeAsksTheListThenACodeAndSaysWhenTheLastFactorGoes() throws {
        let fixture = try DeliveringDaemon()
        let me = try TestUser.user
        try fixture.importContact(me.name, "email", "t@example.com")
        try fixture.addWaitingContact(me.name, "--phone", "+49 151 1234 5678")
        #expect(try fixture.ctl(["contact", "send-code", "--channel", "email"], as: me).status == 0)
        let code = try #require(fixture.delivery.lastCode("email"))

        // An address the user does not have is refused before any code is typed.
        let absent = try fixture.ctl(["contact", "remove", "--email", "zed@example.com"], input: code + "\n", as: me)
        #expect(absent.status == 1 && absent.stderr.contains("\(me.name) has no email contact z***@example.com"), "\(absent)")
        #expect(!absent.stderr.contains("Current code"), "\(absent)")

        // A waiting contact is not a factor: removing it leaves 2FA on. (The code was not used above.)
        let waiting = try fixture.ctl(["contact", "remove", "--phone", "+49 151 1234 5678"], input: code + "\n", as: me)
        #expect(waiting.status == 0 && waiting.stdout == "Removed the phone +49 *** *** 78 of \(me.name).\n", "\(waiting)")
        #expect(waiting.stderr.contains("Removing the phone +49 *** *** 78 of \(me.name).\n"), "\(waiting)")
        #expect(try fixture.contacts(me.name).map(\.channel) == ["email"])
        #expect(try fixture.status(me.name).enrollment == "active")

        #expect(try fixture.ctl(["contact", "send-code"], as: me).status == 0)
        let second = try #require(fixture.delivery.lastCode("email"))
        let last = try fixture.ctl(["contact", "remove", "--email"], input: second + "\n", as: me)
        #expect(last.status == 0, "\(last)")
        #expect(last.stderr.contains("Removing the email t***@example.com of \(me.name): it is the last factor, so 2FA turns off."), "\(last)")
        #expect(last.stderr.contains("Current code (any factor, a recovery code, or one from 'twofoldctl contact send-code'): "), "\(last)")
        #expect(last.stdout == "Removed the email t***@example.com of \(me.name): it was the last factor, so 2FA is now off.\n")
        #expect(try fixture.contacts(me.name).isEmpty)
        #expect(try fixture.status(me.name).enrollment == "none")
    }

    @Test func removingARequiredUsersLastContactAsAdminIsConfirmed() throws {
        let fixture = try DeliveringDaemon()
        try fixture.importContact("alice", "email", "alice@example.com")
        #expect(try fixture.ctl(["user", "require", "alice"]).status == 0)
        let refused = try fixture.ctl(["contact", "remove", "--email", "--user", "alice"])
        #expect(refused.status == 7, "\(refused)")
        #expect(refused.stderr.contains("run again with --yes to remove it"), "\(refused)")
        #expect(try fixture.contacts("alice").count == 1, "nothing removed")
        let forced = try fixture.ctl(["contact", "remove", "--email", "--user", "alice", "--yes", "--json"])
        #expect(forced.status == 0, "\(forced)")
        struct Done: Decodable { var ok: Bool; var user: String?; var message: String }
        #expect(try forced.json(Done.self).message.contains("it was the last factor, so 2FA is now off"))
        #expect(try fixture.contacts("alice").isEmpty)
        #expect(try fixture.status("alice").enrollment == "none")
        #expect(try fixture.audit("alice").contains { $0.action == "contact" && $0.reason == "1 email contact removed" })
    }

    @Test func sendCodeSaysWhereTheCodeWentAndWhatItIsFor() throws {
        let fixture = try DeliveringDaemon()
        let me = try TestUser.user
        try fixture.importContact("alice", "email", "alice@example.com")
        try fixture.importContact(me.name, "phone", "+49 151 1234 5678")
        let result = try fixture.ctl(["contact", "send-code", "--channel", "email", "--user", "alice"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == """
            A code was sent by email to a***@example.com; it is valid for 5 minutes, once.
            Type it where twofoldctl asks for a current code on this host (contact add|remove, enroll, factors remove, recovery-codes, disable).

            """, "\(result)")
        let mail = fixture.delivery.messages("email")
        #expect(mail.count == 1 && mail[0].contains("To: alice@example.com\n") && mail[0].contains("User: alice\n"), "\(mail)")
        #expect(try fixture.audit("alice").contains { $0.action == "send" && $0.outcome == "sent" && $0.service == "twofoldctl" })

        // The user's own, by phone.
        let phone = try fixture.ctl(["contact", "send-code", "--channel", "phone"], as: me)
        #expect(phone.status == 0 && phone.stdout.hasPrefix("A code was sent by text message to +49 *** *** 78;"), "\(phone)")
        let text = fixture.delivery.messages("sms")
        #expect(text.count == 1 && text[0].contains("To: +4915112345678\n") && text[0].contains("User: \(me.name)\n"), "\(text)")

        let ghost = try fixture.ctl(["contact", "send-code", "--user", "ghost", "--json"])
        #expect(ghost.status == 1 && ghost.stdout.contains("\"notFound\""), "\(ghost)")
    }

    /// A code from `contact send-code` is taken wherever twofoldctl asks a current code, and the
    /// prompts say so to a user with a verified contact: enroll, recovery-codes, factors remove,
    /// disable (contact add and remove: above).
    @Test func aCodeFromSendCodeServesEveryCurrentCodePrompt() throws {
        let fixture = try DeliveringDaemon()
        let me = try TestUser.user
        // Without a contact the prompt names the app only.
        let app = try fixture.importApp(me.name)
        let plain = try fixture.ctl(["recovery-codes"], input: app.code() + "\n", as: me)
        #expect(plain.status == 0, "\(plain)")
        #expect(plain.stderr.contains("Current code from your authenticator app: ") && !plain.stderr.contains("send-code"), "\(plain)")

        try fixture.importContact(me.name, "email", "t@example.com")
        func sent() throws -> String {
            let result = try fixture.ctl(["contact", "send-code"], as: me)
            #expect(result.status == 0, "\(result)")
            return try #require(fixture.delivery.lastCode("email"))
        }
        let prompt = "Current code (any factor, a recovery code, or one from 'twofoldctl contact send-code'): "

        let enrolled = try fixture.daemon.enroll(["--qr", "none", "--name", "tablet"], as: me, currentCode: try sent(), user: me.name)
        #expect(enrolled.result.status == 0, "\(enrolled.result)")
        #expect(enrolled.result.stderr.contains(prompt), "\(enrolled.result)")
        #expect(try fixture.status(me.name).factors == ["app", "tablet"])

        let recovery = try fixture.ctl(["recovery-codes"], input: try sent() + "\n", as: me)
        #expect(recovery.status == 0 && recovery.stderr.contains(prompt), "\(recovery)")
        #expect(EnrollTranscript.recoveryCodes(in: recovery.stdout).count == 10, "\(recovery)")

        let removed = try fixture.ctl(["factors", "remove", "tablet"], input: try sent() + "\n", as: me)
        #expect(removed.status == 0 && removed.stderr.contains(prompt), "\(removed)")
        #expect(try fixture.status(me.name).factors == ["app"])

        let disabled = try fixture.ctl(["disable"], input: try sent() + "\n", as: me)
        #expect(disabled.status == 0 && disabled.stderr.contains(prompt), "\(disabled)")
        #expect(try fixture.status(me.name).enrollment == "none")
        // Each code served once, for twofoldctl: four sends, four successes.
        let uses = try fixture.audit(me.name).filter { $0.action == "verify" && $0.outcome == "success" && $0.reason == "code delivered by email" }
        #expect(uses.count == 4, "\(uses)")
    }
}
