import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// .pub lines for the tests, built as ssh-keygen writes them (the SSH wire form in base64).
enum SSHKeyLines {
    static func wire(_ parts: [[UInt8]]) -> Data {
        var data = Data()
        for part in parts {
            withUnsafeBytes(of: UInt32(part.count).bigEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: part)
        }
        return data
    }

    /// An sk-ssh-ed25519 key whose 32 key bytes are all `byte`.
    static func skEd25519(_ byte: UInt8, comment: String = "alice@laptop") -> String {
        let type = "sk-ssh-ed25519@openssh.com"
        let blob = wire([Array(type.utf8), [UInt8](repeating: byte, count: 32), Array("ssh:".utf8)])
        return "\(type) \(blob.base64EncodedString()) \(comment)"
    }
}

/// twofoldctl's side of SSH keys that needs no key in the daemon: the checks before any code or
/// request, authorized-keys never failing sshd, the policy's SSH fields.
@Suite struct SSHKeyCLITests {
    /// A socket nothing listens on: a command that reached for the daemon would exit 3.
    static let noDaemon = ["--socket", "/nonexistent/twofold-test.sock"]

    @Test("ssh-key add checks the file before any code or request: a private key unread, two keys, a bad type, options")
    func addChecksTheFileFirst() throws {
        let directory = try makeTemporaryDirectory("tfssh")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(String, String)] = [
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-secret-\n-----END OPENSSH PRIVATE KEY-----\n", "is a private key"),
            (SSHKeyLines.skEd25519(1) + "\n" + SSHKeyLines.skEd25519(2) + "\n", "holds 2 keys"),
            ("# nothing\n\n", "holds no public key"),
            ("ssh-dss AAAAB3NzaC1kc3MAAACBAP== old\n", "is not a key type Twofold serves"),
            ("from=\"10.0.0.1\" " + SSHKeyLines.skEd25519(1) + "\n", "is not a key type Twofold serves"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let path = directory + "/k\(index).pub"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try CLI.run(["ssh-key", "add", path] + Self.noDaemon)
            #expect(result.status == 1, "\(index): \(result)")
            #expect(result.stderr.contains(expected), "\(index): \(result)")
            #expect(!result.stderr.contains("-secret-"), "a private key's contents are never shown: \(result)")
        }
        let missing = try CLI.run(["ssh-key", "add", directory + "/none.pub"] + Self.noDaemon)
        #expect(missing.status == 1 && missing.stderr.contains("cannot read"), "\(missing)")
    }

    @Test("ssh-key import refuses bad lines by number before any request (none was good: nothing sent)")
    func importRefusesBadLines() throws {
        let list = ["# user key", "alice " + SSHKeyLines.skEd25519(1).replacingOccurrences(of: "AAAA", with: "!!!!"), "bob", "",
                    "carol ssh-dss AAAAB3NzaC1kc3MAAACBAP=="].joined(separator: "\n")
        let result = try CLI.run(["ssh-key", "import", "-", "--json"] + Self.noDaemon, input: list)
        #expect(result.status == 1, "\(result)")
        struct Summary: Decodable { struct Refused: Decodable { var line: Int; var user: String?; var error: String }; var ok: Bool; var imported: Int; var refused: [Refused] }
        let summary = try result.json(Summary.self)
        #expect(!summary.ok && summary.imported == 0)
        #expect(summary.refused.map(\.line) == [2, 3, 5], "\(summary.refused)")
        #expect(summary.refused.map(\.user) == ["alice", "bob", "carol"])
    }

    @Test("authorized-keys exits 0 with no line on any error (no daemon, a daemon that refuses), one short line on standard error")
    func authorizedKeysNeverFailsSSHD() throws {
        let unreachable = try CLI.run(["authorized-keys", "alice"] + Self.noDaemon)
        #expect(unreachable.status == 0 && unreachable.stdout.isEmpty, "\(unreachable)")
        #expect(unreachable.stderr.hasPrefix("twofoldctl authorized-keys: cannot reach twofoldd"), "\(unreachable)")
        #expect(unreachable.stderr.split(separator: "\n").count == 1, "\(unreachable)")

        // An ordinary user is not authorized_keys_user: twofoldd refuses it.
        let daemon = try DaemonProcess()
        let refused = try daemon.ctlAsTestUser(["authorized-keys", "alice"])
        #expect(refused.status == 0 && refused.stdout.isEmpty, "\(refused)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused)")
    }

    @Test("policy set --ssh-key-types, --ssh-verify-required: sent, shown, and in the dry run's changes")
    func policySSHFields() throws {
        let daemon = try DaemonProcess()
        struct DryRun: Decodable {
            struct Change: Decodable { var field: String; var from: String; var to: String }
            var changes: [Change]
            var policy: PolicyDocument
        }
        let dry = try daemon.ctl(["policy", "set", "--ssh-key-types", "any", "--ssh-verify-required", "on", "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry)")
        let document = try dry.json(DryRun.self)
        #expect(document.policy.sshKeyTypes == "any" && document.policy.sshVerifyRequired)
        let changes = Dictionary(uniqueKeysWithValues: document.changes.map { ($0.field, $0.to) })
        #expect(changes["SSH key types"] == "any (sk- and plain keys)", "\(document.changes)")
        #expect(changes["SSH verification"] == "required (verify-required: the key's PIN or built-in)", "\(document.changes)")

        let set = try daemon.ctl(["policy", "set", "--ssh-verify-required", "on"])
        #expect(set.status == 0, "\(set)")
        let shown = try daemon.ctl(["policy", "show"])
        #expect(shown.stdout.contains("SSH key types:    sk (hardware-backed sk- keys only)\n"), "\(shown)")
        #expect(shown.stdout.contains("SSH verification: required (verify-required: the key's PIN or built-in)\n"), "\(shown)")
        #expect(shown.stdout.contains("SSH keys by host: (none: the two lines above everywhere)\n"), "\(shown)")
    }

    @Test("policy set --host-ssh-keys and user ssh-key-rule: checked before any request, sent, shown, explained, removed with default")
    func chainOptions() throws {
        let daemon = try DaemonProcess()
        for bad in [["policy", "set", "--host-ssh-keys", "bastion"], ["policy", "set", "--host-ssh-keys", "bastion=rsa"],
                    ["user", "ssh-key-rule", "alice", "sk,no-touch-required"], ["user", "ssh-key-rule", "alice"]] {
            let refused = try daemon.ctl(bad)
            #expect(refused.status == 2 && !refused.stderr.isEmpty, "\(bad): \(refused)")
        }
        let set = try daemon.ctl(["policy", "set", "--host-ssh-keys", "bastion-*=sk, verify-required", "--host-ssh-keys", "build-1=any"])
        #expect(set.status == 0 && set.stdout.contains("SSH keys by host: bastion-*=sk,verify-required; build-1=any\n"), "\(set)")
        let explained = try daemon.ctl(["policy", "explain", "alice", "--host", "bastion-3"])
        #expect(explained.stdout.contains("SSH keys served: sk,verify-required (host bastion-3 (bastion-*): sk,verify-required)\n"), "\(explained)")
        let user = try daemon.ctl(["user", "ssh-key-rule", "alice", "any"])
        #expect(user.status == 0 && user.stdout.hasSuffix(": any (admin override: any)\n"), "\(user)")
        let back = try daemon.ctl(["user", "ssh-key-rule", "alice", "default", "--json"])
        #expect(try back.json(PolicyExplanation.self).sshKeysBecause == "default: sk", "\(back)")
        #expect(try daemon.ctl(["policy", "set", "--host-ssh-keys", "build-1=default"]).stdout.contains("SSH keys by host: bastion-*=sk,verify-required\n"))
        // A host name from the command line comes back in the reason: printed escaped, never as a terminal control sequence.
        #expect(try daemon.ctl(["policy", "set", "--host-ssh-keys", "*=any"]).status == 0)
        let hostile = try daemon.ctl(["policy", "explain", "alice", "--host", "evil\u{1b}[2Jhost"])
        #expect(hostile.status == 0 && !hostile.stdout.contains("\u{1b}") && hostile.stdout.contains("SSH keys served: any (host evil"), "\(hostile)")
    }
}

/// doctor's SSH keys section against real `sshd -T -f` runs (and `-C` for a Match block's member).
@Suite struct DoctorSSHKeysTests {
    @Test("sshd asking twofoldctl: the command, its user against authorized_keys_user, verify-required, users' own files")
    func servedKeysSetup() throws {
        let fixture = try DoctorFixture()
        let policy = try fixture.daemon.ctl(["policy", "set", "--ssh-verify-required", "on"])
        #expect(policy.status == 0, "\(policy)")
        let ctl = Paths.twofoldctl
        let plain = try fixture.sshdConfig("plain", ["AuthorizedKeysCommand \(ctl) authorized-keys --timeout 5 %u", "AuthorizedKeysCommandUser root"])
        let (_, first) = try fixture.report(["--sshd-config", plain])
        if SSHKeysPaths.safe(ctl) {
            #expect(first.has("sshkeys.command", "ok"), "\(first)")
        }
        #expect(first.has("sshkeys.command-user", "ok") && first.named("sshkeys.command-user").first?.message.hasPrefix("root") == true, "\(first)")
        #expect(first.has("sshkeys.verify-required", "warning"), "\(first)")
        let own = try #require(first.named("sshkeys.authorized-keys-file").first, "\(first)")
        #expect(own.severity == "warning" && own.message.contains("for every user"), "\(own)")
        #expect(own.fix?.contains("AuthorizedKeysFile none") == true, "\(own)")

        // A dedicated user twofoldd does not know (no authorized_keys_user): every call would be refused.
        let hardware = try fixture.sshdConfig("hardware", [
            "AuthorizedKeysCommand \(ctl) authorized-keys %u", "AuthorizedKeysCommandUser nobody", "PubkeyAuthOptions verify-required",
            "Match Group \(TestUser.requiredGroup)", "    AuthorizedKeysFile none",
        ])
        let (status, second) = try fixture.report(["--sshd-config", hardware])
        #expect(status == 1, "\(second)")
        let user = try #require(second.named("sshkeys.command-user").first, "\(second)")
        #expect(user.severity == "error" && user.message.contains("only root (authorized_keys_user is not set)"), "\(user)")
        #expect(user.fix == "`authorized_keys_user = nobody` in twofoldd.conf, then `systemctl reload twofoldd`", "\(user)")
        #expect(second.has("sshkeys.verify-required", "ok"), "\(second)")
        let confirmed = try #require(second.named("sshkeys.authorized-keys-file").first, "\(second)")
        #expect(confirmed.severity == "ok" && confirmed.message.contains("confirmed for twofold-member"), "\(confirmed)")

        // The wrong argument (%U is the uid), and a copy sshd would not run (under /tmp, writable by all).
        try FileManager.default.copyItem(atPath: ctl, toPath: fixture.directory + "/twofoldctl")
        for (command, expected) in [("\(ctl) authorized-keys %U", "does not ask twofoldctl"),
                                    ("\(fixture.directory)/twofoldctl authorized-keys %u", "/tmp is writable by its group or others")] {
            let config = try fixture.sshdConfig("wrong", ["AuthorizedKeysCommand \(command)", "AuthorizedKeysCommandUser root"])
            let (_, report) = try fixture.report(["--sshd-config", config])
            let finding = try #require(report.named("sshkeys.command").first, "\(report)")
            #expect(finding.severity == "error" && finding.message.contains(expected), "\(finding)")
        }

        // sshd not asking twofoldctl: one note, nothing else of the section.
        let none = try fixture.sshdConfig("none", ["PubkeyAuthentication yes"])
        let (_, third) = try fixture.report(["--sshd-config", none])
        #expect(third.findings.filter { $0.check.hasPrefix("sshkeys.") }.map(\.check) == ["sshkeys.command"], "\(third)")
        #expect(third.named("sshkeys.command").first?.message.hasPrefix("not set") == true, "\(third)")
    }
}

/// sshd's rule for AuthorizedKeysCommand's path, as the test sees it (a build tree may not pass it).
enum SSHKeysPaths {
    static func safe(_ path: String) -> Bool {
        guard let resolved = realpath(path, nil) else { return false }
        defer { free(resolved) }
        var current = String(cString: resolved)
        while true {
            var info = stat()
            guard stat(current, &info) == 0, info.st_uid == 0, info.st_mode & 0o022 == 0 else { return false }
            if current == "/" { return true }
            current = (current as NSString).deletingLastPathComponent
        }
    }
}

/// doctor against a twofoldd with authorized_keys_user: AuthorizedKeysCommandUser compared with it.
@Suite struct DoctorSSHKeysUserTests {
    @Test("AuthorizedKeysCommandUser: twofoldd's authorized_keys_user or root is ok; another account is an error naming the right one")
    func commandUserAgainstTheDaemon() throws {
        let fixture = try DoctorFixture(extraConfig: "authorized_keys_user = nobody")
        for (user, severity) in [("nobody", "ok"), ("root", "ok"), (try TestUser.groupMember.name, "error")] {
            let config = try fixture.sshdConfig("keys-\(user)", ["AuthorizedKeysCommand \(Paths.twofoldctl) authorized-keys %u", "AuthorizedKeysCommandUser \(user)"])
            let (_, report) = try fixture.report(["--sshd-config", config])
            let finding = try #require(report.named("sshkeys.command-user").first, "\(report)")
            #expect(finding.severity == severity, "\(user): \(finding)")
            if severity == "error" {
                #expect(finding.message.contains("only root and nobody"), "\(finding)")
                #expect(finding.fix?.hasPrefix("`AuthorizedKeysCommandUser nobody` in ") == true, "\(finding)")
            }
        }
    }
}
