import Foundation
import Testing
import TwofoldTestSupport
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldQR

/// `twofoldctl enroll`, `status`, `recovery-codes` and `disable` against a real daemon.
@Suite struct EnrollTests {
    @Test func enrollEndToEndWithQRCode() throws {
        let daemon = try DaemonProcess()
        let before = try daemon.ctl(["status", "--user", "alice"])
        #expect(before.status == 0, "\(before)")
        #expect(before.stdout.contains("not enrolled"), "\(before)")

        let (result, app, transcript) = try daemon.enroll(["--user", "alice", "--qr", "utf8"], user: "alice")
        #expect(result.status == 0, "\(result)\n\(daemon.log)")
        #expect(result.stdout.contains("2FA is now active for alice"))
        #expect(transcript.uri.hasPrefix("otpauth://totp/TwofoldTest:alice?secret="))
        #expect(transcript.uri.contains("secret=" + app.base32))
        // The key is printed in groups of four for typing.
        #expect(transcript.key.split(separator: " ").allSatisfy { $0.count <= 4 })

        // The QR code the command printed decodes, with the real zbarimg, to the URI it printed.
        let matrix = try QRImage.matrix(fromHalfBlocks: result.stdout)
        #expect(matrix == (try QRCode.encode(transcript.uri)))
        #expect(try QRImage.zbar(QRImage.pgm(matrix)) == transcript.uri)
        #expect(try QRImage.zbar(QRImage.terminalPGM(result.stdout)) == transcript.uri)

        #expect(transcript.recoveryCodes.count >= 5)
        let after = try daemon.ctl(["status", "--user", "alice"])
        #expect(after.status == 0)
        #expect(after.stdout.contains("active (totp)"), "\(after)")
        #expect(after.stdout.contains("\(transcript.recoveryCodes.count) left"), "\(after)")
        let json = try daemon.ctl(["status", "--user", "alice", "--json"]).json(UserStatus.self)
        #expect(json.enrollment == "active")
        #expect(json.method == "totp")
        #expect(json.recoveryCodesLeft == transcript.recoveryCodes.count)

        // A login now needs a code of the new secret (the next step: the enrollment used this one).
        let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "alice", service: "sshd")) { _, _ in app.code(offset: 1) }
        #expect(login.verdict == .success)
    }

    @Test func otherQRStyles() throws {
        let daemon = try DaemonProcess()
        let inverted = try daemon.enroll(["--user", "inv", "--qr", "utf8-inverted"], user: "inv")
        #expect(inverted.result.status == 0, "\(inverted.result)")
        let matrix = try QRImage.matrix(fromHalfBlocks: inverted.result.stdout, paintedIsLight: false)
        #expect(try QRImage.zbar(QRImage.pgm(matrix)) == inverted.transcript.uri)

        let ansi = try daemon.enroll(["--user", "ansi", "--qr", "ansi"], user: "ansi")
        #expect(ansi.result.status == 0, "\(ansi.result)")
        #expect(ansi.result.stdout.contains("\u{1B}[40m"))

        let none = try daemon.enroll(["--user", "plain", "--qr", "none"], user: "plain")
        #expect(none.result.status == 0, "\(none.result)")
        #expect(QRImage.blockLines(in: none.result.stdout).isEmpty)
        #expect(!none.result.stdout.contains("\u{1B}["))
    }

    @Test func enrollJSONLines() throws {
        let daemon = try DaemonProcess()
        let session = try daemon.interactive(["enroll", "--user", "bob", "--json"])
        let first = try session.read(until: { $0.hasSuffix("\n") })
        struct Offer: Decodable { var step: String; var offer: EnrollmentOffer }
        let offer = try JSONDecoder().decode(Offer.self, from: Data(first.utf8))
        #expect(offer.step == "offer")
        #expect(offer.offer.user == "bob")
        #expect(offer.offer.digits == 6 && offer.offer.period == 30 && offer.offer.algorithm == "SHA1")
        let app = try Authenticator(base32: offer.offer.secretBase32)
        session.send(app.code())
        let two = try session.read(until: { $0.split(separator: "\n").count >= 2 && $0.hasSuffix("\n") })
        struct Codes: Decodable { var step: String; var recoveryCodes: [String] }
        let codes = try JSONDecoder().decode(Codes.self, from: Data(two.split(separator: "\n")[1].utf8))
        #expect(codes.step == "recoveryCodes")
        #expect(!codes.recoveryCodes.isEmpty)
        #expect(try daemon.status("bob").enrollment != "active")
        session.send("yes")
        let result = session.finish()
        #expect(result.status == 0, "\(result)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        struct Done: Decodable { var step: String; var user: String }
        let done = try JSONDecoder().decode(Done.self, from: Data(lines[2].utf8))
        #expect(done.step == "activated" && done.user == "bob")
        #expect(result.stderr.isEmpty, "prompts are not shown with --json when standard input is not a terminal")
        #expect(try daemon.status("bob").enrollment == "active")
    }

    @Test func unconfirmedEnrollmentIsNotActivated() throws {
        let daemon = try DaemonProcess()
        let (result, _, transcript) = try daemon.enroll(["--user", "carol", "--qr", "none"], confirm: "no", user: "carol")
        #expect(result.status == 7, "\(result)")
        #expect(result.stderr.contains("not activated"))
        #expect(!transcript.recoveryCodes.isEmpty)
        #expect(try daemon.status("carol").enrollment != "active")
    }

    @Test func wrongCodeExitsFive() throws {
        let daemon = try DaemonProcess()
        let session = try daemon.interactive(["enroll", "--user", "dan", "--qr", "none"])
        let printed = try session.read(until: EnrollTranscript.hasOffer)
        let app = try Authenticator(base32: try EnrollTranscript.offer(in: printed).key.replacingOccurrences(of: " ", with: ""))
        session.send(app.wrongCode())
        let result = session.finish()
        #expect(result.status == 5, "\(result)")
        #expect(!result.stderr.isEmpty)
        #expect(try daemon.status("dan").enrollment != "active")
    }

    @Test func noCodeOnStandardInputIsCancelled() throws {
        let daemon = try DaemonProcess()
        let result = try daemon.ctl(["enroll", "--user", "erin", "--qr", "none"], input: "")
        #expect(result.status == 7, "\(result)")
        #expect(result.stderr.contains("no code given"))
    }

    @Test func policyAskingTwoCodes() throws {
        let daemon = try DaemonProcess()
        let set = try daemon.ctl(["policy", "set", "--enrollment-codes", "2"])
        #expect(set.status == 0, "\(set)")
        let (result, _, _) = try daemon.enroll(["--user", "fay", "--qr", "none"], twoCodes: true, user: "fay")
        #expect(result.status == 0, "\(result)\n\(daemon.log)")
        // The offer says two codes are needed, so both are asked for up front.
        #expect(result.stderr.contains("Wait for the next code and type it: "), "\(result)")
        #expect(!result.stderr.contains("2 consecutive codes"), "no wasted round trip: \(result)")
        #expect(try daemon.status("fay").enrollment == "active")
    }

    /// The whole life of a self-service user (the test user, not root): enroll, re-enroll with a current
    /// code, new recovery codes, disable refused by policy, then allowed.
    @Test func selfServiceAsAnOrdinaryUser() throws {
        let daemon = try DaemonProcess()
        let me = try TestUser.user
        let first = try daemon.enroll(["--qr", "none"], as: me, user: me.name)
        #expect(first.result.status == 0, "\(first.result)\n\(daemon.log)")
        #expect(try daemon.status(me.name).enrollment == "active")

        // Status of one's own account, without --user; another's is refused.
        let own = try daemon.ctl(["status"], as: me)
        #expect(own.status == 0, "\(own)")
        #expect(own.stdout.split(separator: "\n").contains { $0.hasPrefix("User:") && $0.dropFirst(5).trimmingCharacters(in: .whitespaces) == me.name },
                "the caller's own account, found by its real uid: \(own)")
        let other = try daemon.ctl(["status", "--user", "root"], as: me)
        #expect(other.status == 4, "\(other)")

        // Enrolling again (a further factor, "app-2") asks for a code of the current secret first; a
        // wrong one is refused. It shows no recovery codes: the saved set stays valid.
        let wrong = try daemon.ctl(["enroll", "--qr", "none"], input: first.app.wrongCode() + "\n", as: me)
        #expect(wrong.status == 5, "\(wrong)")
        let second = try daemon.enroll(["--qr", "none"], as: me, currentCode: first.app.code(offset: 1), user: me.name)
        #expect(second.result.status == 0, "\(second.result)\n\(daemon.log)")
        #expect(second.app.base32 != first.app.base32)
        #expect(second.result.stdout.contains("Factor 'app-2' added"), "\(second.result)")
        #expect(second.transcript.recoveryCodes.isEmpty)
        #expect(try daemon.status(me.name).recoveryCodesLeft == first.transcript.recoveryCodes.count)

        // The new secret's codes work from now on (the enrollment used step 0; use the next ones).
        let recovery = try daemon.ctl(["recovery-codes"], input: second.app.code(offset: 1) + "\n", as: me)
        #expect(recovery.status == 0, "\(recovery)\n\(daemon.log)")
        let codes = EnrollTranscript.recoveryCodes(in: recovery.stdout)
        #expect(!codes.isEmpty)
        #expect(Set(codes).isDisjoint(with: first.transcript.recoveryCodes))
        #expect(try daemon.status(me.name).recoveryCodesLeft == codes.count)

        // Disable: refused while policy forbids it (exit 4), then allowed with a current code.
        #expect(try daemon.ctl(["policy", "set", "--allow-disable", "false"]).status == 0)
        let refused = try daemon.ctl(["disable"], input: second.app.code() + "\n", as: me)
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stderr.contains("policy"), "\(refused)")
        #expect(try daemon.ctl(["policy", "set", "--allow-disable", "true", "--window", "3"]).status == 0)
        let disabled = try daemon.ctl(["disable", "--json"], input: second.app.code(offset: 2) + "\n", as: me)
        #expect(disabled.status == 0, "\(disabled)\n\(daemon.log)")
        #expect(disabled.stdout.contains("\"ok\" : true"))
        #expect(try daemon.status(me.name).enrollment == "none")
    }

    @Test func recoveryCodesAndDisableAsAdminForAUser() throws {
        let daemon = try DaemonProcess()
        let app = try Authenticator.random()
        let imported = try daemon.ctl(["import", "gail", "--uri", "-"], input: app.uri(account: "gail") + "\n")
        #expect(imported.status == 0, "\(imported)")
        let wrong = try daemon.ctl(["recovery-codes", "--user", "gail"], input: app.wrongCode() + "\n")
        #expect(wrong.status == 5, "\(wrong)")
        let recovery = try daemon.ctl(["recovery-codes", "--user", "gail", "--json"], input: app.code() + "\n")
        #expect(recovery.status == 0, "\(recovery)")
        struct Codes: Decodable { var recoveryCodes: [String] }
        let codes = try recovery.json(Codes.self).recoveryCodes
        #expect(try daemon.status("gail").recoveryCodesLeft == codes.count)
        let disabled = try daemon.ctl(["disable", "--user", "gail"], input: app.code(offset: 1) + "\n")
        #expect(disabled.status == 0, "\(disabled)")
        #expect(disabled.stdout.contains("2FA is now off for gail"))
        #expect(try daemon.status("gail").enrollment == "none")
    }

    @Test func selfEnrollmentRefusedByPolicyExitsFour() throws {
        let daemon = try DaemonProcess()
        #expect(try daemon.ctl(["policy", "set", "--self-enrollment", "false"]).status == 0)
        let me = try TestUser.user
        let refused = try daemon.ctl(["enroll", "--qr", "none"], input: "123456\nyes\n", as: me)
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stderr.contains("policy"), "\(refused)")
        #expect(try daemon.status(me.name).enrollment == "none")
    }

    @Test func lockedUserExitsSix() throws {
        let daemon = try DaemonProcess()
        #expect(try daemon.ctl(["policy", "set", "--max-failures", "2"]).status == 0)
        let app = try Authenticator.random()
        #expect(try daemon.ctl(["import", "lou", "--uri", "-"], input: app.uri(account: "lou") + "\n").status == 0)
        let first = try daemon.ctl(["recovery-codes", "--user", "lou"], input: app.wrongCode() + "\n")
        #expect(first.status == 5, "\(first)")
        let second = try daemon.ctl(["recovery-codes", "--user", "lou"], input: app.wrongCode() + "\n")
        #expect([5, 6].contains(second.status), "\(second)")
        // Locked now: even the right code is refused, with exit 6.
        let locked = try daemon.ctl(["recovery-codes", "--user", "lou", "--json"], input: app.code() + "\n")
        #expect(locked.status == 6, "\(locked)")
        #expect(locked.stdout.contains("\"code\" : \"locked\""), "\(locked)")
    }
}
