import Foundation
import Testing
import TwofoldTestSupport
import TwofoldClient
import TwofoldCore
import TwofoldProtocol

/// The admin commands against a real daemon, and how failures map to exit codes.
@Suite struct AdminTests {
    /// Imports `user` with a fresh secret through the CLI (URI on standard input).
    func provision(_ daemon: DaemonProcess, _ user: String) throws -> Authenticator {
        let app = try Authenticator.random()
        let result = try daemon.ctl(["import", user, "--uri", "-"], input: app.uri(account: user) + "\n")
        #expect(result.status == 0, "\(result)")
        return app
    }

    @Test func usersTableJSONAndPaging() throws {
        let daemon = try DaemonProcess()
        let empty = try daemon.ctl(["users"])
        #expect(empty.status == 0, "\(empty)")
        #expect(empty.stdout == "No users.\n")
        let names = ["u1", "u2", "u3", "u4", "u5"]
        for name in names { _ = try provision(daemon, name) }
        #expect(try daemon.ctl(["user", "require", "u2"]).status == 0)

        let table = try daemon.ctl(["users"])
        #expect(table.status == 0, "\(table)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("USER") == true)
        for column in ["ENROLLED", "METHOD", "REQUIRED", "LAST SUCCESS", "FAILURES", "LOCKED", "RECOVERY CODES"] {
            #expect(lines[0].contains(column))
        }
        #expect(lines.count == names.count + 1)
        #expect(lines.contains { $0.hasPrefix("u2") && $0.contains("yes (admin override: required)") })
        #expect(lines.contains { $0.hasPrefix("u1") && $0.contains("active") && $0.contains("totp") && $0.contains("no (policy: nobody is required)") })

        let json = try daemon.ctl(["users", "--json"])
        #expect(json.status == 0)
        let users = try json.json([UserStatus].self)
        #expect(users.map(\.user) == names)

        // Pages of two: every user once, in order.
        let paged = try daemon.ctl(["users", "--json", "--page-size", "2"]).json([UserStatus].self)
        #expect(paged.map(\.user) == names)
    }

    @Test func userShowRequireExemptDefault() throws {
        let daemon = try DaemonProcess()
        _ = try provision(daemon, "hank")
        let show = try daemon.ctl(["user", "show", "hank"])
        #expect(show.status == 0, "\(show)")
        #expect(show.stdout.contains("User:") && show.stdout.contains("hank"))
        #expect(show.stdout.contains("active (totp)"))
        #expect(show.stdout.contains("Override:") && show.stdout.contains("policy"))

        let require = try daemon.ctl(["user", "require", "hank", "--json"])
        #expect(require.status == 0, "\(require)")
        let required = try require.json(UserStatus.self)
        #expect(required.required && required.override == "required")
        #expect(try daemon.status("hank").required)

        let exempt = try daemon.ctl(["user", "exempt", "hank"])
        #expect(exempt.status == 0, "\(exempt)")
        #expect(exempt.stdout.contains("admin override: exempt"))
        #expect(try daemon.status("hank").override == "exempt")

        let back = try daemon.ctl(["user", "default", "hank"])
        #expect(back.status == 0, "\(back)")
        let status = try daemon.status("hank")
        #expect(status.override == "policy" && !status.required)

        // Overrides work for users who have not enrolled too.
        #expect(try daemon.ctl(["user", "require", "ivy"]).status == 0)
        #expect(try daemon.ctl(["user", "show", "ivy", "--json"]).json(UserStatus.self).required)
    }

    @Test func userRevokeAndUnlock() throws {
        let daemon = try DaemonProcess()
        let app = try provision(daemon, "jack")
        #expect(try daemon.ctl(["policy", "set", "--max-failures", "2"]).status == 0)
        for _ in 0..<2 {
            _ = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "jack", service: "sshd")) { _, _ in app.wrongCode() }
        }
        let locked = try daemon.ctl(["user", "show", "jack", "--json"]).json(UserStatus.self)
        #expect(locked.lockedUntilMillis != nil, "\(locked)")
        let shown = try daemon.ctl(["user", "show", "jack"])
        #expect(shown.stdout.contains("Locked:") && shown.stdout.contains("until"), "\(shown)")

        let unlock = try daemon.ctl(["user", "unlock", "jack"])
        #expect(unlock.status == 0, "\(unlock)")
        #expect(unlock.stdout.contains("Unlocked jack"))
        let unlocked = try daemon.status("jack")
        #expect(unlocked.lockedUntilMillis == nil && unlocked.failures == 0)

        let revoke = try daemon.ctl(["user", "revoke", "jack", "--json"])
        #expect(revoke.status == 0, "\(revoke)")
        struct Done: Decodable { var ok: Bool; var user: String? }
        #expect(try revoke.json(Done.self).ok)
        #expect(try daemon.status("jack").enrollment == "none")
        // Nothing left to revoke: the daemon says not found (exit 1), also as JSON.
        let again = try daemon.ctl(["user", "revoke", "jack", "--json"])
        #expect(again.status == 1, "\(again)")
        #expect(again.stdout.contains("\"code\" : \"notFound\""), "\(again)")
    }

    @Test func policyShowSetRoundTrip() throws {
        let daemon = try DaemonProcess()
        let shown = try daemon.ctl(["policy", "show", "--json"])
        #expect(shown.status == 0, "\(shown)")
        let before = try shown.json(PolicyDocument.self)
        let human = try daemon.ctl(["policy", "show"])
        #expect(human.stdout.contains("Require:") && human.stdout.contains(before.require))

        let set = try daemon.ctl([
            "policy", "set", "--require", "groups", "--required-groups", "wheel, admins",
            "--service", "sshd=required", "--service", "sudo=optional",
            "--unenrolled", "grace", "--grace-days", "14", "--grace-deadline", "2030-01-01",
            "--self-enrollment", "false", "--allow-disable", "false", "--enrollment-codes", "2",
            "--digits", "8", "--algorithm", "sha256", "--period", "60", "--window", "2", "--max-drift", "4",
            "--max-failures", "7", "--throttle-delay-ms", "500", "--throttle-max-delay-ms", "8000", "--lock-seconds", "600",
        ])
        #expect(set.status == 0, "\(set)\n\(daemon.log)")
        #expect(set.stdout.contains("Policy updated"))
        var expected = before
        expected.require = "groups"
        expected.requiredGroups = ["wheel", "admins"]
        expected.services = ["sshd": "required", "sudo": "optional"]
        expected.unenrolled = "grace"
        expected.graceDays = 14
        expected.graceDeadlineMillis = 1_893_456_000_000  // 2030-01-01 00:00 UTC (TZ=UTC in tests)
        expected.selfEnrollment = false
        expected.allowDisable = false
        expected.enrollmentCodes = 2
        expected.digits = 8
        expected.algorithm = "SHA256"
        expected.period = 60
        expected.window = 2
        expected.maxDrift = 4
        expected.maxFailures = 7
        expected.throttleDelayMillis = 500
        expected.throttleMaxDelayMillis = 8000
        expected.lockSeconds = 600
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self) == expected)

        // Only the given fields change.
        #expect(try daemon.ctl(["policy", "set", "--service", "sudo=default", "--grace-deadline", "none"]).status == 0)
        expected.services = ["sshd": "required"]
        expected.graceDeadlineMillis = nil
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self) == expected)

        // New enrollments follow the policy.
        let session = try daemon.interactive(["enroll", "--user", "kim", "--json"])
        let offer = try session.read(until: { $0.hasSuffix("\n") })
        #expect(offer.contains("\"digits\":8") && offer.contains("\"period\":60") && offer.contains("\"algorithm\":\"SHA256\""), "\(offer)")
        _ = session.finish()

        // The daemon checks the values: an out-of-range one is refused as a whole (exit 1).
        let refused = try daemon.ctl(["policy", "set", "--window", "11", "--require", "everyone"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("window"), "\(refused)")
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self) == expected)
    }

    @Test func importFromURIArgument() throws {
        let daemon = try DaemonProcess()
        let app = try Authenticator.random()
        let result = try daemon.ctl(["import", "lena", "--uri", app.uri(account: "lena")])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("Imported 2FA for lena"))
        let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "lena", service: "sshd")) { _, _ in app.code() }
        #expect(login.verdict == .success)
        let bad = try daemon.ctl(["import", "lena2", "--uri", "https://example.com/"])
        #expect(bad.status == 1, "\(bad)")
    }

    @Test func bulkImportFromAListImportsTheGoodLinesAndReportsTheRest() throws {
        let daemon = try DaemonProcess()
        // 450 users: three requests at the default batch of 200; among them two lines the daemon
        // refuses and one the CLI cannot split, each reported with its line number.
        var apps: [String: Authenticator] = [:]
        var list = "# user otpauth-uri\n\n"
        for i in 0..<450 {
            let user = "bulk\(i)"
            let app = try Authenticator.random()
            apps[user] = app
            list += "\(user)\t\(app.uri(account: user))\n"
        }
        list += "badscheme https://example.com/\n"     // line 453
        list += "lonely\n"                              // line 454
        list += "bad\u{7}name \(try Authenticator.random().uri(account: "x"))\n"   // line 455
        let file = daemon.directory + "/list"
        try list.write(toFile: file, atomically: true, encoding: .utf8)

        let result = try daemon.ctl(["bulk-import", file, "--json"])
        #expect(result.status == 1, "\(result)")
        struct Refused: Decodable { var line: Int; var user: String?; var error: String }
        struct Summary: Decodable { var ok: Bool; var imported: Int; var refused: [Refused] }
        let summary = try result.json(Summary.self)
        #expect(!summary.ok)
        #expect(summary.imported == 450)
        #expect(summary.refused.map(\.line) == [453, 454, 455])
        #expect(summary.refused.first?.user == "badscheme")
        #expect(!result.stdout.contains("secret="), "the output never echoes a secret")

        // Every imported user logs in with the app's code, and each import is audited.
        for user in ["bulk0", "bulk199", "bulk200", "bulk449"] {
            let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: user, service: "sshd")) { _, _ in apps[user]!.code() }
            #expect(login.verdict == .success, "\(user)")
        }
        let audit = try daemon.ctl(["audit", "--user", "bulk449", "--json"])
        #expect(audit.stdout.contains("\"import\""), "\(audit)")

        // From standard input, all good: exit 0 and a one-line summary.
        let again = try daemon.ctl(["bulk-import", "-", "--batch", "7"], input: "bulk0 \(apps["bulk0"]!.uri(account: "bulk0"))\n")
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout == "Imported 2FA for 1 user.\n")
        // Not for users.
        let denied = try daemon.ctlAsTestUser(["bulk-import", file])
        #expect(denied.status == 4, "\(denied)")
    }

    @Test func importGoogleAuthenticatorFile() throws {
        let daemon = try DaemonProcess()
        let app = try Authenticator.random()
        let file = daemon.directory + "/google_authenticator"
        try """
        \(app.base32)
        " RATE_LIMIT 3 30
        " WINDOW_SIZE 3
        " DISALLOW_REUSE
        " TOTP_AUTH
        12345678
        23456789
        34567890

        """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try daemon.ctl(["import", "mona", "--google-authenticator", file, "--json"])
        #expect(result.status == 0, "\(result)\n\(daemon.log)")
        struct Imported: Decodable { var ok: Bool; var user: String; var recoveryCodes: Int }
        let imported = try result.json(Imported.self)
        #expect(imported.user == "mona" && imported.recoveryCodes == 3)
        let status = try daemon.status("mona")
        #expect(status.enrollment == "active" && status.recoveryCodesLeft == 3)
        let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "mona", service: "sshd")) { _, _ in app.code() }
        #expect(login.verdict == .success)

        let missing = try daemon.ctl(["import", "mona", "--google-authenticator", daemon.directory + "/nope"])
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderr.contains("cannot read"), "\(missing)")
    }

    @Test func importUsersOathLine() throws {
        let daemon = try DaemonProcess()
        let app = try Authenticator.random()
        let hex = app.secret.copyBytes().map { String(format: "%02x", $0) }.joined()
        let other = try Authenticator.random()
        let otherHex = other.secret.copyBytes().map { String(format: "%02x", $0) }.joined()
        let file = daemon.directory + "/users.oath"
        try """
        # pam_oath users
        HOTP/T30/6\tned\t-\t\(otherHex)
        HOTP/T30/6 oliver - \(hex)

        """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try daemon.ctl(["import", "oliver", "--users-oath", file])
        #expect(result.status == 0, "\(result)\n\(daemon.log)")
        let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "oliver", service: "sshd")) { _, _ in app.code() }
        #expect(login.verdict == .success)

        // No line for the user: the CLI says so (exit 1) without asking the daemon.
        let none = try daemon.ctl(["import", "pat", "--users-oath", file])
        #expect(none.status == 1, "\(none)")
        #expect(none.stderr.contains("no line for 'pat'"))
    }

    @Test func importUsersOathLineForAnotherName() throws {
        let daemon = try DaemonProcess()
        let app = try Authenticator.random()
        let hex = app.secret.copyBytes().map { String(format: "%02x", $0) }.joined()
        let file = daemon.directory + "/users.oath"
        try "HOTP/T30/6 olly - \(hex)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try daemon.ctl(["import", "oliver", "--users-oath", file, "--line-for", "olly"])
        #expect(result.status == 0, "\(result)\n\(daemon.log)")
        let login = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "oliver", service: "sshd")) { _, _ in app.code() }
        #expect(login.verdict == .success)
    }

    @Test func auditWithFilters() throws {
        let daemon = try DaemonProcess()
        let app = try provision(daemon, "quinn")
        _ = try provision(daemon, "rita")
        _ = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "quinn", service: "sshd", rhost: "192.0.2.7")) { _, _ in app.wrongCode() }
        _ = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "quinn", service: "sshd", rhost: "192.0.2.7")) { _, _ in app.code() }

        let all = try daemon.ctl(["audit", "--json"])
        #expect(all.status == 0, "\(all)")
        let entries = try all.json([AuditEntry].self)
        #expect(Set(entries.compactMap(\.user)).isSuperset(of: ["quinn", "rita"]))
        #expect(entries.map(\.timeMillis) == entries.map(\.timeMillis).sorted(), "newest last")

        let quinn = try daemon.ctl(["audit", "--user", "quinn", "--json"]).json([AuditEntry].self)
        #expect(!quinn.isEmpty && quinn.allSatisfy { $0.user == "quinn" })
        let failures = try daemon.ctl(["audit", "--user", "quinn", "--outcome", "failure", "--json"]).json([AuditEntry].self)
        #expect(failures.count >= 1 && failures.allSatisfy { $0.outcome == "failure" })
        #expect(failures.contains { $0.rhost == "192.0.2.7" })
        let last = try daemon.ctl(["audit", "--limit", "1", "--json"]).json([AuditEntry].self)
        #expect(last.count == 1)
        #expect(last.first == entries.last)
        let recent = try daemon.ctl(["audit", "--since", "1h", "--json"]).json([AuditEntry].self)
        #expect(recent.count == entries.count)
        let future = try daemon.ctl(["audit", "--since", "2100-01-01", "--json"]).json([AuditEntry].self)
        #expect(future.isEmpty)

        let table = try daemon.ctl(["audit", "--user", "quinn"])
        #expect(table.status == 0)
        #expect(table.stdout.hasPrefix("TIME"))
        #expect(table.stdout.contains("192.0.2.7"))
        let nothing = try daemon.ctl(["audit", "--since", "2100-01-01"])
        #expect(nothing.stdout == "No audit records.\n")
    }

    @Test func ordinaryUserIsRefusedAdminCommands() throws {
        let daemon = try DaemonProcess()
        for arguments in [["users"], ["user", "show", "root"], ["policy", "show"], ["policy", "set", "--window", "2"],
                          ["user", "revoke", "root"], ["audit"], ["import", "twofold-test", "--uri", "-"],
                          ["host", "add", "host-a", "--fingerprint", String(repeating: "ab", count: 32)], ["host", "list"],
                          ["host", "revoke", "host-a", "--yes"], ["audit", "--host", "host-a"]] {
            let result = try daemon.ctlAsTestUser(arguments, input: "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP\n")
            #expect(result.status == 4, "\(arguments): \(result)")
            #expect(result.stderr.contains("twofoldctl: this command needs root or membership of the admin group"), "\(arguments): \(result)")
        }
        let json = try daemon.ctlAsTestUser(["users", "--json"])
        #expect(json.status == 4)
        #expect(json.stdout.contains("\"code\" : \"permissionDenied\""), "\(json)")
    }

    @Test func daemonDownExitsThree() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/absent.sock"
        let result = try CLI.run(["status", "--socket", socket])
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("cannot reach twofoldd at \(socket)"), "\(result)")
        #expect(result.stdout.isEmpty)

        // The socket from the environment, and the JSON error.
        let viaEnvironment = try CLI.run(["users", "--json"], environment: ["TWOFOLD_SOCKET": socket])
        #expect(viaEnvironment.status == 3, "\(viaEnvironment)")
        #expect(viaEnvironment.stderr.contains(socket))
        #expect(viaEnvironment.stdout.contains("\"code\" : \"unreachable\""), "\(viaEnvironment)")

        // A daemon that stopped: same.
        let daemon = try DaemonProcess()
        #expect(try daemon.ctl(["status"]).status == 0)
        daemon.stop()
        let stopped = try daemon.ctl(["status"])
        #expect(stopped.status == 3, "\(stopped)")
        #expect(stopped.stderr.contains(daemon.socketPath))
    }
}
