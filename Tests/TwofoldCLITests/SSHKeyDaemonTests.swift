import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// twofoldctl's SSH key commands against a real twofoldd with `authorized_keys_user` set.
@Suite struct SSHKeyDaemonTests {
    @Test("authorized-keys as authorized_keys_user: an unknown user gets no line and no error; it may ask nothing else; another account is refused (exit 0, one line)")
    func authorizedKeysUser() throws {
        let keysUser = try TestUser.user
        let daemon = try DaemonProcess(extraConfig: "authorized_keys_user = \(keysUser.name)")
        let unknown = try daemon.ctl(["authorized-keys", "nobody-known"], as: keysUser)
        #expect(unknown.status == 0 && unknown.stdout.isEmpty && unknown.stderr.isEmpty, "\(unknown)")
        let other = try daemon.ctl(["status"], as: keysUser)
        #expect(other.status == 4, "authorized_keys_user may ask nothing else: \(other)")
        let refused = try daemon.ctl(["authorized-keys", keysUser.name], as: try TestUser.groupMember)
        #expect(refused.status == 0 && refused.stdout.isEmpty, "\(refused)")
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("authorized_keys_user"), "\(refused)")
    }

    @Test("add, list, serve (with verify-required when the policy says so), the policy's key types, import, remove, revoke all")
    func roundTrip() throws {
        let keysUser = try TestUser.user
        let member = try TestUser.groupMember.name
        let daemon = try DaemonProcess(extraConfig: "authorized_keys_user = \(keysUser.name)")
        let directory = try makeTemporaryDirectory("tfsshd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let line = SSHKeyLines.skEd25519(7, comment: "member@laptop")
        try (line + "\n").write(toFile: directory + "/k.pub", atomically: true, encoding: .utf8)

        let added = try daemon.ctl(["ssh-key", "add", directory + "/k.pub", "--name", "laptop", "--user", member])
        #expect(added.status == 0 && added.stdout.hasPrefix("Added SSH key 'laptop' of \(member) (sk-ssh-ed25519@openssh.com SHA256:"), "\(added)")
        let listed = try daemon.ctl(["ssh-key", "list", "--user", member, "--json"])
        let keys = try listed.json([SSHKeyInfo].self)
        let keygen = try CLI.runProgram(["/usr/bin/ssh-keygen", "-l", "-f", directory + "/k.pub"])
        #expect(keys.map(\.name) == ["laptop"] && keygen.stdout.contains(" \(keys[0].fingerprint) "), "\(keys) \(keygen)")

        let served = try daemon.ctl(["authorized-keys", member], as: keysUser)
        #expect(served.status == 0 && served.stdout == line + "\n" && served.stderr.isEmpty, "\(served)")
        #expect(try daemon.ctl(["policy", "set", "--ssh-verify-required", "on"]).status == 0)
        #expect(try daemon.ctl(["authorized-keys", member], as: keysUser).stdout == "verify-required " + line + "\n")

        // A plain key: refused under the default policy (sk), taken with --ssh-key-types any.
        _ = try ChildProcess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "plain", "-f", directory + "/plain"])
        let plain = try daemon.ctl(["ssh-key", "add", directory + "/plain.pub", "--user", member])
        #expect(plain.status == 4 && plain.stderr.contains("only hardware-backed"), "\(plain)")
        #expect(try daemon.ctl(["policy", "set", "--ssh-key-types", "any"]).status == 0)
        #expect(try daemon.ctl(["ssh-key", "add", directory + "/plain.pub", "--user", member]).status == 0)
        let both = try daemon.ctl(["authorized-keys", member], as: keysUser).stdout.split(separator: "\n")
        #expect(both.count == 2 && both.contains { $0.hasPrefix("ssh-ed25519 ") }, "no verify-required on a plain key: \(both)")

        let list = [member + " " + SSHKeyLines.skEd25519(8), keysUser.name + " " + SSHKeyLines.skEd25519(9)].joined(separator: "\n")
        let imported = try daemon.ctl(["ssh-key", "import", "-"], input: list)
        #expect(imported.status == 0 && imported.stdout == "Imported 2 SSH keys.\n", "\(imported)")

        let removed = try daemon.ctl(["ssh-key", "remove", "laptop", "--user", member])
        #expect(removed.status == 0, "\(removed)")
        #expect(!(try daemon.ctl(["authorized-keys", member], as: keysUser).stdout.contains(line)))
        // By fingerprint, as ssh-keygen -l prints it: only that key goes.
        let plainPrint = try #require(try CLI.runProgram(["/usr/bin/ssh-keygen", "-l", "-f", directory + "/plain.pub"]).stdout
            .split(separator: " ").first { $0.hasPrefix("SHA256:") })
        let byPrint = try daemon.ctl(["ssh-key", "remove", String(plainPrint), "--user", member])
        #expect(byPrint.status == 0 && byPrint.stdout.contains("Removed SSH key 'ed25519'"), "\(byPrint)")
        #expect(try daemon.ctl(["ssh-key", "list", "--user", member, "--json"]).json([SSHKeyInfo].self).count == 1)
        #expect(try daemon.ctl(["ssh-key", "remove", "SHA256:short", "--user", member]).status == 2)
        let revoked = try daemon.ctl(["ssh-key", "remove", "--all", "--user", member])
        #expect(revoked.status == 0, "\(revoked)")
        #expect(try daemon.ctl(["authorized-keys", member], as: keysUser).stdout.isEmpty)
        let none = try daemon.ctl(["ssh-key", "remove", "laptop", "--user", member])
        #expect(none.status == 1 && none.stderr.contains("has no SSH key 'laptop'"), "\(none)")
    }
}
