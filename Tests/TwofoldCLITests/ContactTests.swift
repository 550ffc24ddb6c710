import Foundation
import Testing
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport

/// `twofoldctl contact ...`. Parsing and validation run without a daemon (a good value gets as far
/// as connecting: exit 3); the rest runs against `FakeDaemon`, which answers with canned documents
/// and records the requests (the daemon's side of contacts has its own tests).
@Suite struct ContactTests {
    static let noDaemon = ["--socket", "/nonexistent/twofold.sock"]
    static let newYear = Fixtures.newYear

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

    // MARK: Against a fake daemon

    @Test func importSendsNormalisedContactsInBatchesAndMapsTheDaemonsRefusals() throws {
        let daemon = try FakeDaemon { request in
            guard case .contactImport(let items) = request else { return .error(code: .invalidRequest, message: "unexpected") }
            return .importedMany(items.map { $0.user == "mallory" ? ImportOutcome(user: $0.user, error: "invalid user name")
                                                                  : ImportOutcome(user: $0.user, recoveryCodes: 0) })
        }
        let list = """
            alice email Alice@Example.COM
            bob   phone +49 (151) 1234-5678
            # a comment
            carl  sms   +14155552671
            bad   email nope
            mallory email m@example.com
            dora  email dora@example.com

            """
        let result = try daemon.ctl(["contact", "import", "-", "--batch", "2"], input: list)
        #expect(result.status == 1, "\(result)")
        #expect(result.stdout == "Imported 4 verified contacts; 2 lines refused.\n", "\(result)")
        #expect(result.stderr == "line 5 (bad): \(invalid("nope", .email)!)\nline 6 (mallory): invalid user name\n", "\(result)")
        let batches = daemon.requests.compactMap { request -> [ContactImport]? in
            if case .contactImport(let items) = request { return items }
            return nil
        }
        #expect(batches.map(\.count) == [2, 2, 1], "\(batches)")
        #expect(batches.flatMap { $0 } == [
            ContactImport(user: "alice", channel: "email", value: "Alice@example.com"),
            ContactImport(user: "bob", channel: "sms", value: "+4915112345678"),
            ContactImport(user: "carl", channel: "sms", value: "+14155552671"),
            ContactImport(user: "mallory", channel: "email", value: "m@example.com"),
            ContactImport(user: "dora", channel: "email", value: "dora@example.com"),
        ])

        let good = try daemon.ctl(["contact", "import", "-"], input: "erin email erin@example.com\n")
        #expect(good.status == 0 && good.stdout == "Imported 1 verified contact.\n" && good.stderr.isEmpty, "\(good)")
    }

    @Test func importKeepsEachRequestUnderTheFrameBound() throws {
        let daemon = try FakeDaemon { request in
            guard case .contactImport(let items) = request else { return .error(code: .invalidRequest, message: "unexpected") }
            return .importedMany(items.map { ImportOutcome(user: $0.user, recoveryCodes: 0) })
        }
        // 600 long addresses: about 160 KB of JSON, more than twice the 64 KiB frame.
        let local = String(repeating: "x", count: 60)
        let list = (0..<600).map { "user\($0) email \(local)\($0)@\(String(repeating: "d", count: 60)).example.com" }.joined(separator: "\n")
        let result = try daemon.ctl(["contact", "import", "-"], input: list + "\n")
        #expect(result.status == 0 && result.stdout == "Imported 600 verified contacts.\n", "\(result)")
        var sizes: [Int] = []
        for request in daemon.requests {
            guard case .contactImport = request, case .request(let json) = try ControlCodec.encodeRequest(request) else { continue }
            sizes.append(json.count)
        }
        #expect(sizes.count >= 3 && sizes.allSatisfy { $0 < 50_000 }, "\(sizes)")
    }

    @Test func addAsksACurrentCodeOfAUserWithAFactorAndSaysWhereTheCodeWent() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .status(let user): return .status(Fixtures.status(user ?? "twofold-test", enrollment: "active", method: "totp", factors: ["app"]))
            case .contactAdd(let user, let channel, _, _):
                return .contactCodeSent(ContactInfo(user: user ?? "twofold-test", channel: channel, masked: "+49 *** *** 78", verified: false,
                                                    addedMillis: Self.newYear, codeValidSeconds: 600))
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let me = try TestUser.user
        let result = try daemon.ctl(["contact", "add", "--phone", "+49 151 1234 5678"], input: "123 456\n", as: me)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == """
            A code was sent by text message to +49 *** *** 78; it is valid for 10 minutes.
            Confirm the contact with 'twofoldctl contact verify' and that code; until then it is not used.

            """, "\(result)")
        #expect(result.stderr.contains("Adding phone number +49 *** *** 78 for twofold-test: a code goes to it to confirm it."), "\(result)")
        #expect(result.stderr.contains("Current code (any factor, a recovery code, or one from 'twofoldctl contact send-code'): "))
        #expect(daemon.requests == [.status(user: nil), .contactAdd(user: nil, channel: "sms", value: "+4915112345678", code: "123456")])

        // No code given: cancelled (exit 7), nothing added.
        let cancelled = try daemon.ctl(["contact", "add", "--email", "me@example.com"], input: "", as: me)
        #expect(cancelled.status == 7, "\(cancelled)")
        #expect(!daemon.requests.contains { if case .contactAdd(_, "email", _, _) = $0 { true } else { false } }, "\(daemon.requests)")

        // Root is not asked; --json says what to run next.
        let root = try daemon.ctl(["contact", "add", "--email", "Bob@Example.com", "--user", "bob", "--json"], input: "")
        #expect(root.status == 0, "\(root)")
        #expect(daemon.requests.last == .contactAdd(user: "bob", channel: "email", value: "Bob@example.com", code: nil))
        struct Sent: Decodable { var ok: Bool; var user: String; var contact: ContactInfo; var message: String; var next: String? }
        let sent = try root.json(Sent.self)
        #expect(sent.ok && sent.user == "bob" && sent.contact.codeValidSeconds == 600)
        #expect(sent.next == "twofoldctl contact verify --user bob")
    }

    @Test func addAsksNoCodeOfAUserWithoutAFactor() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .status: return .status(Fixtures.status("twofold-test", enrollment: "none"))
            case .contactAdd(_, let channel, _, _):
                return .contactCodeSent(ContactInfo(user: "twofold-test", channel: channel, masked: "t***@example.com", verified: false,
                                                    addedMillis: Self.newYear, codeValidSeconds: 90))
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let result = try daemon.ctl(["contact", "add", "--email", "t@example.com"], input: "", as: try TestUser.user)
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        #expect(result.stdout.hasPrefix("A code was sent by email to t***@example.com; it is valid for 90 seconds.\n"), "\(result)")
        #expect(daemon.requests.last == .contactAdd(user: nil, channel: "email", value: "t@example.com", code: nil))
    }

    @Test func verifyReadsTheCodeFromStandardInputNeverFromArguments() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .contactList(let user, _): return .contacts(user == "nobody-waits" ? [Fixtures.email] : [Fixtures.email, Fixtures.phone])
            case .contactVerify: return .ok
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let result = try daemon.ctl(["contact", "verify", "--user", "alice"], input: "12-34 56\n")
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("Code sent to +49 *** *** 78: "), "\(result)")
        #expect(result.stdout == "Verified the phone +49 *** *** 78 of alice: logins may use a code sent to it where the policy allows 'sms'.\n")
        #expect(daemon.requests.last == .contactVerify(user: "alice", code: "123456"))

        let nothing = try daemon.ctl(["contact", "verify", "--user", "nobody-waits"], input: "123456\n")
        #expect(nothing.status == 1, "\(nothing)")
        #expect(nothing.stderr.contains("no contact of nobody-waits is waiting for its code; add one with: twofoldctl contact add"))
        #expect(!daemon.requests.contains(.contactVerify(user: "nobody-waits", code: "123456")))

        let extra = try daemon.ctl(["contact", "verify", "123456"])
        #expect(extra.status == 2, "a code is never an argument: \(extra)")
    }

    @Test func listIsATableOfMaskedContactsOrJSON() throws {
        let daemon = try FakeDaemon { request in
            guard case .contactList(_, let all) = request else { return .error(code: .invalidRequest, message: "unexpected") }
            return .contacts(all ? [Fixtures.email, Fixtures.phone, ContactInfo(user: "bob", channel: "email", masked: "b***@example.org", verified: true,
                                                                         addedMillis: Self.newYear, verifiedMillis: Self.newYear)] : [])
        }
        let all = try daemon.ctl(["contact", "list", "--all"])
        #expect(all.status == 0, "\(all)")
        #expect(all.stdout == """
            USER   CHANNEL  CONTACT           STATUS    ADDED                       VERIFIED
            alice  email    a***@example.com  verified  2026-01-01 00:00:00 +00:00  2026-01-01 00:01:00 +00:00
            alice  sms      +49 *** *** 78    waiting   2026-01-01 01:00:00 +00:00  -
            bob    email    b***@example.org  verified  2026-01-01 00:00:00 +00:00  2026-01-01 00:00:00 +00:00

            """, "\(all)")
        #expect(daemon.requests.last == .contactList(user: nil, all: true))
        let json = try daemon.ctl(["contact", "list", "--all", "--json"])
        #expect(try json.json([ContactInfo].self).count == 3)
        let none = try daemon.ctl(["contact", "list", "--user", "carl"])
        #expect(none.status == 0 && none.stdout == "No contacts for carl.\n", "\(none)")
    }

    @Test func removeAsksTheListThenACodeAndSaysWhenTheLastFactorGoes() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .contactList: return .contacts([Fixtures.email, Fixtures.phone])
            case .status: return .status(Fixtures.status("twofold-test", enrollment: "active", method: "email", contacts: [Fixtures.email, Fixtures.phone]))
            case .contactRemove: return .ok
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let me = try TestUser.user
        let last = try daemon.ctl(["contact", "remove", "--email"], input: "654321\n", as: me)
        #expect(last.status == 0, "\(last)")
        #expect(last.stderr.contains("Removing the email a***@example.com of twofold-test: it is the last factor, so 2FA turns off."), "\(last)")
        #expect(last.stdout == "Removed the email a***@example.com of twofold-test: it was the last factor, so 2FA is now off.\n")
        #expect(daemon.requests.suffix(3) == [.contactList(user: nil, all: false), .status(user: nil),
                                              .contactRemove(user: nil, channel: "email", value: nil, code: "654321")])

        // A waiting contact is not a factor: removing it leaves 2FA on.
        let waiting = try daemon.ctl(["contact", "remove", "--phone", "+49 151 1234 5678"], input: "654321\n", as: me)
        #expect(waiting.status == 0 && waiting.stdout == "Removed the phone +49 *** *** 78 of twofold-test.\n", "\(waiting)")
        #expect(daemon.requests.last == .contactRemove(user: nil, channel: "sms", value: "+4915112345678", code: "654321"))

        // An address the user does not have is refused before any code is typed.
        let count = daemon.requests.count
        let absent = try daemon.ctl(["contact", "remove", "--email", "zed@example.com"], input: "654321\n", as: me)
        #expect(absent.status == 1 && absent.stderr.contains("twofold-test has no email contact z***@example.com"), "\(absent)")
        #expect(daemon.requests.count == count + 1, "only the list was asked")
    }

    @Test func removingARequiredUsersLastContactAsAdminIsConfirmed() throws {
        let daemon = try FakeDaemon { request in
            switch request {
            case .contactList: return .contacts([Fixtures.email])
            case .status: return .status(Fixtures.status("alice", enrollment: "active", method: "email", contacts: [Fixtures.email], required: true))
            case .contactRemove: return .ok
            default: return .error(code: .invalidRequest, message: "unexpected")
            }
        }
        let refused = try daemon.ctl(["contact", "remove", "--email", "--user", "alice"])
        #expect(refused.status == 7, "\(refused)")
        #expect(refused.stderr.contains("run again with --yes to remove it"), "\(refused)")
        #expect(!daemon.requests.contains { if case .contactRemove = $0 { true } else { false } })
        let forced = try daemon.ctl(["contact", "remove", "--email", "--user", "alice", "--yes", "--json"])
        #expect(forced.status == 0, "\(forced)")
        #expect(daemon.requests.last == .contactRemove(user: "alice", channel: "email", value: nil, code: nil))
        struct Done: Decodable { var ok: Bool; var user: String?; var message: String }
        #expect(try forced.json(Done.self).message.contains("it was the last factor, so 2FA is now off"))
    }

    @Test func sendCodeSaysWhereTheCodeWentAndWhatItIsFor() throws {
        let daemon = try FakeDaemon { request in
            guard case .codeSend(let user, _) = request else { return .error(code: .invalidRequest, message: "unexpected") }
            if user == "ghost" { return .error(code: .notFound, message: "'ghost' has no verified contact") }
            return .contactCodeSent(ContactInfo(user: "alice", channel: "email", masked: "a***@example.com", verified: true,
                                                addedMillis: Self.newYear, verifiedMillis: Self.newYear, codeValidSeconds: 300))
        }
        let result = try daemon.ctl(["contact", "send-code", "--channel", "email", "--user", "alice"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == """
            A code was sent by email to a***@example.com; it is valid for 5 minutes, once.
            Type it where twofoldctl asks for a current code on this host (contact add|remove, enroll, factors remove, recovery-codes, disable).

            """, "\(result)")
        #expect(daemon.requests == [.codeSend(user: "alice", channel: "email")])
        let phone = try daemon.ctl(["contact", "send-code", "--channel", "phone"])
        #expect(phone.status == 0 && daemon.requests.last == .codeSend(user: nil, channel: "sms"), "\(phone)")
        let ghost = try daemon.ctl(["contact", "send-code", "--user", "ghost", "--json"])
        #expect(ghost.status == 1 && ghost.stdout.contains("\"notFound\""), "\(ghost)")
    }
}
