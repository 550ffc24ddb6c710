import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// A safe rollout: `policy set --dry-run` changes nothing and says who a change affects; a change
/// that locks users out needs --yes. And the CLI conventions: global options before the command,
/// --version.
@Suite struct RolloutTests {
    /// Every row of the daemon's database, in SQLite's own dump form (read-only, beside the running daemon).
    func dump(_ daemon: DaemonProcess) throws -> String {
        let script = "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print('\\n'.join(c.iterdump()))"
        let result = try CLI.runProgram(["/usr/bin/python3", "-c", script, daemon.directory + "/state/twofold.sqlite"])
        #expect(result.status == 0, "\(result)")
        return result.stdout
    }

    func impact(_ result: CLIResult) throws -> PolicyImpact {
        struct DryRun: Decodable { var dryRun: Bool; var policy: PolicyDocument; var impact: PolicyImpact }
        let decoded = try result.json(DryRun.self)
        #expect(decoded.dryRun)
        return decoded.impact
    }

    @Test func dryRunChangesNothingAndNamesWhoWouldBeLockedOut() throws {
        let daemon = try DaemonProcess()
        let app = try TestAuthenticator.random()
        #expect(try daemon.ctl(["import", "twofold-test", "--uri", "-"], input: app.uri(account: "twofold-test") + "\n").status == 0)
        let member = try TestUser.groupMember.name
        let before = try dump(daemon)

        let arguments = ["policy", "set", "--require", "groups", "--required-groups", TestUser.requiredGroup]
        let human = try daemon.ctl(arguments + ["--dry-run"])
        #expect(human.status == 0, "\(human)")
        #expect(human.stdout.contains("Dry run: nothing is changed."), "\(human)")
        #expect(human.stdout.contains("Require: nobody -> groups"), "\(human)")
        #expect(human.stdout.contains(member) && human.stdout.contains("refused"), "\(human)")

        let json = try impact(try daemon.ctl(arguments + ["--dry-run", "--json"]))
        let entry = try #require(json.users.first { $0.user == member })
        #expect(entry.requiredAfter && !entry.requiredBefore && entry.atLogin == .refused && entry.atLoginBefore == .notRequired)
        #expect(json.newlyRefused >= 1 && json.newlyRequired >= 1)
        #expect(json.sources.contains { $0.hasPrefix("group \(TestUser.requiredGroup)") }, "\(json.sources)")
        #expect(!json.users.contains { $0.user == "twofold-test" }, "not required before or after: not listed")
        #expect(try dump(daemon) == before, "a dry run changed the database")

        // The real change refuses to lock anyone out without --yes when nobody can be asked.
        let refused = try daemon.ctl(arguments)
        #expect(refused.status == 7, "\(refused)")
        #expect(refused.stderr.contains("would refuse") && refused.stderr.contains(member) && refused.stderr.contains("--yes"), "\(refused)")
        #expect(try dump(daemon) == before, "a refused change changed the database")
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self).require == "nobody")

        // With --yes it is applied; once the member is enrolled nobody is refused any more.
        let applied = try daemon.ctl(arguments + ["--yes"])
        #expect(applied.status == 0, "\(applied)")
        #expect(try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self).require == "groups")
        let memberApp = try TestAuthenticator.random()
        #expect(try daemon.ctl(["import", member, "--uri", "-"], input: memberApp.uri(account: member) + "\n").status == 0)
        let after = try impact(try daemon.ctl(["policy", "set", "--unenrolled", "enroll", "--dry-run", "--json"]))
        #expect(after.refused == 0 && after.newlyRefused == 0, "\(after)")
        // Factor kinds that leave an enrolled user no usable factor are a lock-out too.
        let kinds = try impact(try daemon.ctl(["policy", "set", "--factor-kinds", "hotp", "--dry-run", "--json"]))
        let locked = try #require(kinds.users.first { $0.user == "twofold-test" }, "\(kinds.users)")
        #expect(locked.atLoginBefore == .code && locked.atLogin == .refused)
        #expect(try daemon.ctl(["policy", "set", "--factor-kinds", "hotp"]).status == 7)
        // A change that locks nobody out needs no --yes.
        #expect(try daemon.ctl(["policy", "set", "--window", "2"]).status == 0)
        // The audit says what each change changed.
        let audit = try daemon.ctl(["audit", "--json"]).json([AuditEntry].self).filter { $0.action == "policy" }
        #expect(audit.map(\.reason) == ["policy replaced; changed: require, requiredGroups", "policy replaced; changed: window"], "\(audit)")
    }

    @Test func graceAndEnrollAtLoginAreNotLockOuts() throws {
        let daemon = try DaemonProcess()
        let member = try TestUser.groupMember.name
        let grace = try impact(try daemon.ctl(["policy", "set", "--require", "groups", "--required-groups", TestUser.requiredGroup,
                                               "--unenrolled", "grace", "--grace-days", "7", "--dry-run", "--json"]))
        let entry = try #require(grace.users.first { $0.user == member })
        #expect(entry.atLogin == .grace && entry.graceUntilMillis != nil)
        #expect(grace.newlyRefused == 0)
        let enroll = try impact(try daemon.ctl(["policy", "set", "--require", "groups", "--required-groups", TestUser.requiredGroup,
                                                "--unenrolled", "enroll", "--dry-run", "--json"]))
        #expect(enroll.users.first { $0.user == member }?.atLogin == .enroll)
        #expect(enroll.newlyRefused == 0)
        // An exempt user is never required.
        #expect(try daemon.ctl(["user", "exempt", member]).status == 0)
        let exempt = try impact(try daemon.ctl(["policy", "set", "--require", "everyone", "--dry-run", "--json"]))
        #expect(!exempt.users.contains { $0.user == member }, "\(exempt.users)")
    }

    @Test func dryRunIsAnAdminRequest() throws {
        let daemon = try DaemonProcess()
        let result = try daemon.ctl(["policy", "set", "--require", "everyone", "--dry-run"], as: try TestUser.user)
        #expect(result.status == 4, "\(result)")
    }

    @Test(arguments: [
        [["--socket", "S", "users", "--json"], ["users", "--socket", "S", "--json"], ["--json", "--socket=S", "users"],
         ["--timeout", "5", "--socket", "S", "--json", "users"]],
        [["--socket", "S", "user", "show", "twofold-test", "--json"], ["user", "show", "twofold-test", "--socket", "S", "--json"],
         ["--socket", "S", "--json", "user", "show", "twofold-test"]],
        [["--socket", "S", "--json", "policy", "show"], ["policy", "show", "--json", "--socket", "S"]],
    ])
    func globalOptionsWorkBeforeAndAfterTheCommand(forms: [[String]]) throws {
        let daemon = try DaemonProcess()
        var outputs: [String] = []
        for form in forms {
            let arguments = form.map { $0.replacingOccurrences(of: "S", with: daemon.socketPath) }
            let result = try CLI.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result)")
            outputs.append(result.stdout)
        }
        #expect(Set(outputs).count == 1, "every position gives the same answer: \(outputs)")
    }

    @Test func anUnknownOptionBeforeTheCommandIsStillAnError() throws {
        let result = try CLI.run(["--nope", "users"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("--nope"), "\(result)")
        // A global option's value is not taken for the command.
        let missing = try CLI.run(["--socket"])
        #expect(missing.status == 2, "\(missing)")
    }

    @Test func versions() throws {
        let ctl = try CLI.run(["--version"])
        #expect(ctl.status == 0 && ctl.stdout == "twofoldctl \(TwofoldVersion.string)\n", "\(ctl)")
        let daemon = try CLI.runProgram([TestPaths.twofoldd, "--version"])
        #expect(daemon.status == 0 && daemon.stdout == "twofoldd \(TwofoldVersion.string)\n", "\(daemon)")
        // The package's version is the code's: debian/changelog's top entry, "twofold (VERSION) ...".
        let changelog = try String(contentsOfFile: TestPaths.root + "/debian/changelog", encoding: .utf8)
        let top = changelog.split(separator: "\n").first.map(String.init) ?? ""
        #expect(top.hasPrefix("twofold (\(TwofoldVersion.string)) "), "debian/changelog starts with '\(top)'")
    }
}

/// `policy explain` over the chain: the level that decides and what the next login gives, from
/// a real daemon.
@Suite struct PolicyExplainTests {
    func explain(_ daemon: DaemonProcess, _ arguments: [String]) throws -> PolicyExplanation {
        let result = try daemon.ctl(["policy", "explain"] + arguments + ["--json"])
        #expect(result.status == 0, "\(result)")
        return try result.json(PolicyExplanation.self)
    }

    @Test func eachLevelDecidesInTurn() throws {
        let daemon = try DaemonProcess()
        let set = try daemon.ctl(["policy", "set", "--require", "everyone", "--service", "sshd=optional", "--host", "bastion=required",
                                  "--unenrolled", "enroll"])
        #expect(set.status == 0, "\(set)")
        let rows: [(args: [String], level: String, required: Bool, because: String)] = [
            (["carol"], "default", true, "policy: everyone is required"),
            (["carol", "--service", "sshd"], "service", false, "service sshd: optional"),
            (["carol", "--service", "sshd", "--host", "bastion"], "host", true, "host bastion: required"),
        ]
        for row in rows {
            let e = try explain(daemon, row.args)
            #expect(e.decidedBy == row.level && e.required == row.required && e.because == row.because, "\(row.args): \(e)")
            #expect(e.chain.map(\.level) == ["user", "host", "service", "default"])
            #expect(e.chain.filter(\.decided).map(\.level) == [row.level])
            #expect(e.atLogin == (row.required ? .enroll : .notRequired), "\(row.args): \(e.atLogin)")
        }
        // The user's override comes first, whatever the host says.
        #expect(try daemon.ctl(["user", "exempt", "carol"]).status == 0)
        let exempt = try explain(daemon, ["carol", "--service", "sshd", "--host", "bastion"])
        #expect(exempt.decidedBy == "user" && !exempt.required && exempt.because == "admin override: exempt")
        #expect(exempt.chain.first { $0.level == "host" }?.rule == "host bastion: required", "the levels below are still shown")
        // The human form names the decision and marks the deciding level.
        let human = try daemon.ctl(["policy", "explain", "carol", "--service", "sshd", "--host", "bastion"])
        #expect(human.stdout.contains("carol on service sshd on host bastion: 2FA not required (admin override: exempt), decided by the user level."), "\(human)")
        #expect(human.stdout.contains("<- decides"))
        // The factor kinds: the user's own (user factor-kinds) › host › service › default.
        #expect(try daemon.ctl(["policy", "set", "--service-factor-kinds", "sshd=totp"]).status == 0)
        #expect(try explain(daemon, ["carol", "--service", "sshd"]).factorKinds == ["totp"])
        let kinds = try daemon.ctl(["user", "factor-kinds", "carol", "totp,recovery"])
        #expect(kinds.status == 0 && kinds.stdout == "Factor kinds for carol: totp, recovery (admin override: totp, recovery)\n", "\(kinds)")
        let mine = try explain(daemon, ["carol", "--service", "sshd"])
        #expect(mine.factorKinds == ["totp", "recovery"] && mine.factorKindsBecause == "admin override: totp, recovery")
        #expect(try daemon.ctl(["user", "factor-kinds", "carol", "fax"]).status == 2, "an unknown kind")
        #expect(try daemon.ctl(["user", "factor-kinds", "carol", "default"]).status == 0)
        #expect(try explain(daemon, ["carol", "--service", "sshd"]).factorKindsBecause == "service sshd: totp")
        // An admin request.
        #expect(try daemon.ctl(["policy", "explain", "carol"], as: try TestUser.user).status == 4)
    }
}
