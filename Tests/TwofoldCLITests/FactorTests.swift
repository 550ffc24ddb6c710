import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport

/// Several factors per user through the CLI: `factors`, `factors remove`, `enroll --name`,
/// `import --name`, `bulk-import` with factor names, and what `status`/`users` show of them.
@Suite struct FactorTests {
    func login(_ daemon: DaemonProcess, _ user: String, _ answer: String) throws -> VerdictCode {
        try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: user, service: "sshd")) { _, _ in answer }.verdict
    }

    /// Imports a fresh secret for `user` as factor `name` (root: an admin).
    func importFactor(_ daemon: DaemonProcess, _ user: String, name: String) throws -> Authenticator {
        let app = try Authenticator.random()
        let result = try daemon.ctl(["import", user, "--uri", "-", "--name", name], input: app.uri(account: user) + "\n")
        #expect(result.status == 0, "\(result)")
        return app
    }

    @Test func factorsListHumanAndJSON() throws {
        let daemon = try DaemonProcess()
        let first = try daemon.enroll(["--user", "alice", "--qr", "none"], user: "alice")
        #expect(first.result.status == 0, "\(first.result)")
        #expect(first.result.stdout.contains("(factor 'app')"), "\(first.result)")
        _ = try importFactor(daemon, "alice", name: "tablet")
        #expect(try login(daemon, "alice", first.app.code(offset: 1)) == .success)

        let human = try daemon.ctl(["factors", "--user", "alice"])
        #expect(human.status == 0, "\(human)")
        let lines = human.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(human)")
        #expect(lines[0].split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") == "NAME KIND DETAIL ADDED LAST USED")
        let app = lines[1].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        #expect(app.prefix(6) == ["app", "totp", "SHA1,", "6", "digits,", "30"], "\(human)")
        #expect(!lines[1].hasSuffix("never"), "app was used to log in: \(human)")
        #expect(lines[2].hasPrefix("tablet ") && lines[2].contains("totp") && lines[2].hasSuffix("never"), "\(human)")
        #expect(lines[3].hasPrefix("recovery ") && lines[3].contains("10 codes left"), "\(human)")
        // `factors list` is the same command.
        #expect(try daemon.ctl(["factors", "list", "--user", "alice"]).stdout == human.stdout)

        let json = try daemon.ctl(["factors", "--user", "alice", "--json"])
        #expect(json.status == 0, "\(json)")
        let factors = try json.json([FactorInfo].self)
        #expect(factors.map(\.name) == ["app", "tablet", "recovery"])
        #expect(factors.map(\.kind) == ["totp", "totp", "recovery"])
        #expect(factors[0].lastUsedMillis != nil && factors[1].lastUsedMillis == nil && factors[0].addedAtMillis != nil)
        #expect(factors[2].codesLeft == 10 && factors[0].codesLeft == nil)
        #expect(!json.stdout.contains("secret"), "a listing never carries a secret")

        // Nobody enrolled: said so; a user with factors but no recovery codes left is told how to get some.
        let none = try daemon.ctl(["factors", "--user", "bob"])
        #expect(none.status == 0 && none.stdout == "No factors: 2FA is not enrolled for bob.\n", "\(none)")
        _ = try importFactor(daemon, "carol", name: "phone")
        let noCodes = try daemon.ctl(["factors", "--user", "carol"])
        #expect(noCodes.stdout.hasSuffix("No recovery codes left: 'twofoldctl recovery-codes' makes a new set.\n"), "\(noCodes)")

        // status, user show and users show the factors.
        let status = try daemon.ctl(["status", "--user", "alice"])
        #expect(status.stdout.contains("active (totp)") && status.stdout.contains("Factors:") && status.stdout.contains("2: app, tablet"), "\(status)")
        #expect(try daemon.ctl(["user", "show", "alice"]).stdout == status.stdout)
        #expect(try daemon.ctl(["status", "--user", "alice", "--json"]).json(UserStatus.self).factors == ["app", "tablet"])
        let table = try daemon.ctl(["users"])
        let header = try #require(table.stdout.split(separator: "\n").first)
        #expect(header.contains("METHOD  FACTORS  KEYS  CONTACTS  REQUIRED"), "\(table)")
        let row = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix("alice") })
        #expect(row.split(separator: " ", omittingEmptySubsequences: true).prefix(4) == ["alice", "active", "totp", "2"], "\(table)")
    }

    @Test func kindsOfSeveralFactorsAreShownTogether() throws {
        let daemon = try DaemonProcess()
        _ = try importFactor(daemon, "hal", name: "phone")
        let token = Authenticator(secret: try OTPSecret.generate(), parameters: OTPParameters(method: .hotp))
        let imported = try daemon.ctl(["import", "hal", "--uri", "-", "--name", "token"], input: token.uri(account: "hal") + "\n")
        #expect(imported.status == 0, "\(imported)")
        let status = try daemon.ctl(["status", "--user", "hal"])
        #expect(status.stdout.contains("active (hotp, totp)") && status.stdout.contains("2: phone, token"), "\(status)")
        #expect(try daemon.status("hal").method == "hotp,totp")
        let factors = try daemon.ctl(["factors", "--user", "hal", "--json"]).json([FactorInfo].self)
        #expect(factors.map(\.kind) == ["totp", "hotp"])
    }

    /// The test user adds a second factor through the interactive CLI: asked a current code, told what
    /// it adds, shown no recovery codes and not asked to confirm any; the saved codes stay valid.
    @Test func secondEnrollmentAddsAFactorAndKeepsTheRecoveryCodes() throws {
        let daemon = try DaemonProcess()
        // A wider window, so that each factor can log in twice within a few steps.
        #expect(try daemon.ctl(["policy", "set", "--window", "3"]).status == 0)
        let me = try TestUser.user
        let first = try daemon.enroll(["--qr", "none"], as: me, user: me.name)
        #expect(first.result.status == 0, "\(first.result)\n\(daemon.log)")
        let saved = first.transcript.recoveryCodes
        #expect(saved.count == 10)

        let second = try daemon.enroll(["--qr", "none", "--name", "tablet"], as: me, currentCode: first.app.code(offset: 1), user: me.name)
        #expect(second.result.status == 0, "\(second.result)\n\(daemon.log)")
        #expect(second.result.stderr.contains("2FA is already active for \(me.name) (factors: 'app'): this adds a factor named 'tablet'"), "\(second.result)")
        #expect(second.result.stdout.contains("Factor 'tablet' added for \(me.name)"), "\(second.result)")
        #expect(second.result.stdout.contains("Your recovery codes stay valid ('twofoldctl recovery-codes' makes a new set)."))
        #expect(second.transcript.recoveryCodes.isEmpty, "no recovery codes shown: \(second.result)")
        #expect(!second.result.stderr.contains("Type yes"), "nothing to confirm: \(second.result)")
        let status = try daemon.status(me.name)
        #expect(status.factors == ["app", "tablet"] && status.recoveryCodesLeft == 10)

        // Both factors and the saved recovery codes log in.
        #expect(try login(daemon, me.name, second.app.code(offset: 1)) == .success)
        #expect(try login(daemon, me.name, first.app.code(offset: 2)) == .success)
        #expect(try login(daemon, me.name, saved[0]) == .success, "a recovery code saved at the first enrollment still works")
        #expect(try daemon.status(me.name).recoveryCodesLeft == 9)

        // Without --name the daemon's next default; the prompt names it. An admin is not asked a code.
        let third = try daemon.enroll(["--qr", "none", "--user", me.name], user: me.name)
        #expect(third.result.status == 0, "\(third.result)")
        #expect(third.result.stderr.contains("(factors: 'app', 'tablet'): this adds a factor named 'app-2'"), "\(third.result)")
        #expect(!third.result.stderr.contains("Current code"), "\(third.result)")
        // An existing name: the prompt says it replaces it, and the old secret stops working.
        let fourth = try daemon.enroll(["--qr", "none", "--name", "tablet"], as: me, currentCode: third.app.code(offset: 1), user: me.name)
        #expect(fourth.result.status == 0, "\(fourth.result)")
        #expect(fourth.result.stderr.contains("this replaces the factor 'tablet' once confirmed"), "\(fourth.result)")
        #expect(fourth.result.stdout.contains("Factor 'tablet' of \(me.name) now has the new secret"), "\(fourth.result)")
        #expect(try daemon.status(me.name).factors == ["app", "app-2", "tablet"])
        #expect(try login(daemon, me.name, second.app.code(offset: 2)) == .failure, "the replaced secret no longer works")
        #expect(try login(daemon, me.name, saved[1]) == .success)

        // --json: the offer names the factor; no recoveryCodes step; the activated step says the codes are kept.
        let session = try daemon.interactive(["enroll", "--user", me.name, "--name", "watch", "--json"])
        struct Offer: Decodable { var step: String; var offer: EnrollmentOffer }
        let offer = try JSONDecoder().decode(Offer.self, from: Data(try session.read(until: { $0.hasSuffix("\n") }).utf8)).offer
        #expect(offer.factor == "watch")
        session.send(try Authenticator(base32: offer.secretBase32).code())
        let done = session.finish()
        #expect(done.status == 0, "\(done)")
        let steps = done.stdout.split(separator: "\n")
        struct Activated: Decodable { var step: String; var user: String; var factor: String?; var recoveryCodesKept: Bool }
        #expect(steps.count == 2, "\(done)")
        let activated = try JSONDecoder().decode(Activated.self, from: Data(steps[steps.count - 1].utf8))
        #expect(activated.step == "activated" && activated.factor == "watch" && activated.recoveryCodesKept, "\(done)")
        #expect(try daemon.status(me.name).recoveryCodesLeft == 8)
    }

    @Test func removeByNameWithACodeOrAsAdmin() throws {
        let daemon = try DaemonProcess(extraConfig: "max_failures = 50")
        let me = try TestUser.user
        let app = try importFactor(daemon, me.name, name: "app")
        let tablet = try importFactor(daemon, me.name, name: "tablet")
        let token = try importFactor(daemon, me.name, name: "token")

        // Another user may neither list nor remove them (exit 4), and is asked no code for it.
        let other = try TestUser.other
        let list = try daemon.ctl(["factors", "--user", me.name], as: other)
        #expect(list.status == 4, "\(list)")
        let steal = try daemon.ctl(["factors", "remove", "tablet", "--user", me.name], input: app.code() + "\n", as: other)
        #expect(steal.status == 4, "\(steal)")
        #expect(!steal.stderr.contains("Current code"), "\(steal)")

        // Bad or unknown names: usage errors (exit 2) without a daemon round trip; not found (exit 1) before any code.
        for bad in ["Tablet", "-x", "a/b", "recovery", String(repeating: "a", count: 33)] {
            let result = try daemon.ctl(["factors", "remove", bad], as: me)
            #expect(result.status == 2, "\(bad): \(result)")
        }
        let unknown = try daemon.ctl(["factors", "remove", "watch"], input: app.code() + "\n", as: me)
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.stderr.contains("has no factor named 'watch'") && unknown.stderr.contains("'app', 'tablet', 'token'"), "\(unknown)")
        #expect(!unknown.stderr.contains("Current code"), "\(unknown)")

        // The user's own: a wrong code exit 5, none exit 7, a right one removes it.
        let wrong = try daemon.ctl(["factors", "remove", "tablet"], input: app.wrongCode() + "\n", as: me)
        #expect(wrong.status == 5, "\(wrong)")
        let noCode = try daemon.ctl(["factors", "remove", "tablet"], input: "", as: me)
        #expect(noCode.status == 7, "\(noCode)")
        #expect(try daemon.status(me.name).factors == ["app", "tablet", "token"])
        let removed = try daemon.ctl(["factors", "remove", "tablet"], input: app.code() + "\n", as: me)
        #expect(removed.status == 0, "\(removed)\n\(daemon.log)")
        #expect(removed.stdout == "Removed factor 'tablet' of \(me.name); 2 factors left: 'app', 'token'.\n", "\(removed)")
        #expect(try login(daemon, me.name, tablet.code(offset: 1)) == .failure)
        #expect(try login(daemon, me.name, token.code(offset: 1)) == .success)

        // An admin removes any factor without a code (no standard input at all).
        let admin = try daemon.ctl(["factors", "remove", "token", "--user", me.name, "--json"])
        #expect(admin.status == 0, "\(admin)")
        #expect(admin.stdout.contains("\"ok\" : true") && admin.stdout.contains("1 factor left: 'app'"), "\(admin)")
        #expect(try daemon.status(me.name).factors == ["app"])

        // The last factor of a required user: the daemon refuses the user (exit 4, its message) ...
        #expect(try daemon.ctl(["user", "require", me.name]).status == 0)
        let last = try daemon.ctl(["factors", "remove", "app"], input: app.code(offset: 1) + "\n", as: me)
        #expect(last.status == 4, "\(last)")
        #expect(last.stderr.contains("'app' is the last factor and 2FA is required for '\(me.name)'"), "\(last)")
        #expect(last.stderr.contains("it is the last, so 2FA turns off"), "warned before the code: \(last)")
        #expect(try daemon.status(me.name).factors == ["app"])
        #expect(try login(daemon, me.name, app.code(offset: 1)) == .success, "the code typed for a refused removal was not used up")
        // ... an admin may, but only when confirmed: without a terminal, --yes (it leaves a required user nothing to log in with).
        let unconfirmed = try daemon.ctl(["factors", "remove", "app", "--user", me.name])
        #expect(unconfirmed.status == 7, "\(unconfirmed)")
        #expect(unconfirmed.stderr.contains("is the last factor of \(me.name), who must use 2FA") && unconfirmed.stderr.contains("--yes"), "\(unconfirmed)")
        #expect(try daemon.status(me.name).factors == ["app"])
        let forced = try daemon.ctl(["factors", "remove", "app", "--user", me.name, "--yes"])
        #expect(forced.status == 0, "\(forced)")
        #expect(forced.stdout.contains("it was the last, so 2FA is now off"), "\(forced)")
        #expect(try daemon.status(me.name).enrollment == "none")
    }

    /// twofoldctl repeats the daemon's factor name rule (`FactorNames`): both agree.
    @Test func nameValidationAgreesWithTheDaemon() throws {
        let names = ["app", "app-2", "phone.1", "a_b", "9", String(repeating: "z", count: 32),
                     "", "App", "-a", ".a", "_a", "a b", "a/b", "a:b", "recovery", "recovery2", "é", String(repeating: "z", count: 33)]
        for name in names {
            let valid = FactorName.isValid(name)
            // A valid name gets as far as connecting (exit 3: no daemon there); an invalid one is a usage error.
            for command in [["enroll", "--name", name], ["import", "x", "--uri", "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP", "--name", name],
                            ["bulk-import", "-", "--name", name]] {
                let result = try CLI.run(command + ["--socket", "/nonexistent/twofold.sock"], input: "")
                #expect(result.status == (valid ? 3 : 2) || (valid && command[0] == "bulk-import" && result.status == 0),
                        "\(command): \(result)")
            }
        }
        // The daemon refuses a bad name itself (a client that skips the check): invalidRequest, nothing pending.
        let daemon = try DaemonProcess()
        guard case .error(.invalidRequest, let message) = try daemon.control(.enrollBegin(user: "ned", currentCode: nil, name: "Bad Name")) else {
            Issue.record("a bad factor name must be refused"); return
        }
        #expect(message.contains("factor name"))
        #expect(try daemon.status("ned").enrollment == "none")
    }

    @Test func importAndBulkImportWithNames() throws {
        let daemon = try DaemonProcess()
        let phone = try importFactor(daemon, "ida", name: "phone")
        let plain = try Authenticator.random()
        let result = try daemon.ctl(["import", "ida", "--uri", "-"], input: plain.uri(account: "ida") + "\n")
        #expect(result.status == 0 && result.stdout == "Imported 2FA for ida as factor 'imported': active.\n", "\(result)")
        #expect(try daemon.status("ida").factors == ["imported", "phone"])
        // The same name again replaces that factor.
        let again = try importFactor(daemon, "ida", name: "phone")
        #expect(try daemon.status("ida").factors == ["imported", "phone"])
        #expect(try login(daemon, "ida", phone.code()) == .failure)
        #expect(try login(daemon, "ida", again.code()) == .success)
        let json = try daemon.ctl(["import", "ida", "--uri", "-", "--name", "watch", "--json"], input: plain.uri(account: "ida") + "\n")
        struct Imported: Decodable { var ok: Bool; var user: String; var factor: String; var recoveryCodes: Int }
        #expect(try json.json(Imported.self).factor == "watch", "\(json)")

        // bulk-import: USER [NAME] URI; --name for lines without one.
        var apps: [String: Authenticator] = [:]
        for key in ["b1", "b2", "b3", "b4"] { apps[key] = try Authenticator.random() }
        let list = """
            jo \(apps["b1"]!.uri(account: "jo"))
            jo tablet \(apps["b2"]!.uri(account: "jo"))
            kit\tkey.2\t\(apps["b3"]!.uri(account: "kit"))
            kit Bad \(apps["b4"]!.uri(account: "kit"))
            kit tablet
            lee https://example.com/

            """
        let bulk = try daemon.ctl(["bulk-import", "-", "--name", "laptop", "--json"], input: list)
        #expect(bulk.status == 1, "\(bulk)")
        struct Refused: Decodable { var line: Int; var user: String?; var error: String }
        struct Summary: Decodable { var ok: Bool; var imported: Int; var refused: [Refused] }
        let summary = try bulk.json(Summary.self)
        #expect(summary.imported == 3)
        #expect(summary.refused.map(\.line) == [4, 5, 6], "\(summary.refused)")
        #expect(summary.refused[0].error.contains("'Bad' is not a factor name"), "\(summary.refused)")
        #expect(summary.refused[1].error.contains("expected a user name"), "\(summary.refused)")
        #expect(summary.refused[2].user == "lee", "a field with ':' is a URI, judged by the daemon: \(summary.refused)")
        #expect(try daemon.status("jo").factors == ["laptop", "tablet"])
        #expect(try daemon.status("kit").factors == ["key.2"])
        #expect(try login(daemon, "jo", apps["b2"]!.code()) == .success)
        #expect(try login(daemon, "kit", apps["b3"]!.code()) == .success)
    }

    /// After the last app or token a verified contact keeps 2FA on, and the recovery codes with it
    /// (the daemon's rule): `factors remove` says so instead of "2FA turns off".
    @Test func removingTheLastAppOfAUserWithAContactKeepsTwoFactorOn() throws {
        let fixture = try DeliveringDaemon()
        let me = try TestUser.user
        let first = try fixture.daemon.enroll(["--qr", "none", "--user", me.name], user: me.name)
        #expect(first.result.status == 0, "\(first.result)")
        try fixture.importContact(me.name, "email", "t@example.com")

        let removed = try fixture.ctl(["factors", "remove", "app"], input: first.app.code(offset: 1) + "\n", as: me)
        #expect(removed.status == 0, "\(removed)")
        #expect(removed.stderr.contains("Removing factor 'app' of \(me.name): it is the last app or token, but 2FA stays on with the verified "
                                        + "contact (email t***@example.com) and the recovery codes stay valid.\n"), "\(removed)")
        #expect(!removed.stderr.contains("turns off"), "\(removed)")
        #expect(removed.stdout == "Removed factor 'app' of \(me.name): no app or token is left, but 2FA stays on with the verified contact "
                + "(email t***@example.com) and the recovery codes stay valid.\n", "\(removed)")
        let status = try fixture.status(me.name)
        #expect(status.enrollment == "active" && status.method == "email" && status.factors == [] && status.recoveryCodesLeft == 10, "\(status)")
        #expect(!(try fixture.audit(me.name)).contains { $0.reason?.contains("recovery codes removed") == true })
        // A saved recovery code still logs in.
        #expect(try login(fixture.daemon, me.name, first.transcript.recoveryCodes[0]) == .success)

        // An admin removing a required user's last app is not asked to confirm while a verified
        // contact stays; without one it still is (removeByNameWithACodeOrAsAdmin).
        _ = try fixture.importApp("bob")
        try fixture.importContact("bob", "phone", "+49 151 1234 5678")
        #expect(try fixture.ctl(["user", "require", "bob"]).status == 0)
        let admin = try fixture.ctl(["factors", "remove", "app", "--user", "bob"])
        #expect(admin.status == 0, "\(admin)")
        #expect(admin.stdout == "Removed factor 'app' of bob: no app or token is left, but 2FA stays on with the verified contact "
                + "(phone +49 *** *** 78) and the recovery codes stay valid.\n", "\(admin)")
        #expect(try fixture.status("bob").enrollment == "active")
    }
}
