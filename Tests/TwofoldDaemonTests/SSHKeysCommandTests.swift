import Foundation
import Testing
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The private sshd with `AuthorizedKeysCommand` and sk- keys from the software security key, proved
/// with a stand-in keys command (a script printing the lines of a file) before `twofoldctl
/// authorized-keys` takes its place: what sshd does with the lines it is given, and that it asks the
/// command as the dedicated user, for the user logging in, on every connection.
@Suite("sshd with AuthorizedKeysCommand and sk- keys", .serialized)
struct SSHKeysCommandTests {
    static let testUser = "twofold-ssh"

    /// A stand-in for the keys command: records who ran it for whom, prints `served` for the test user.
    final class StandIn {
        let directory: String
        var calls: [String] {
            ((try? String(contentsOfFile: directory + "/calls.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        init(runAs: String = "twofold-keys") throws {
            directory = try makeTemporaryDirectory("tf-keys")
            try """
            #!/bin/sh
            printf '%s %s\\n' "$(id -un)" "$*" >> \(directory)/calls.log
            [ "$1" = \(SSHKeysCommandTests.testUser) ] && cat \(directory)/served
            """.write(toFile: directory + "/keys.sh", atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: directory + "/calls.log", contents: nil)
            try run(["/bin/chown", runAs, directory + "/calls.log"])
            try serve([])
        }

        /// The lines printed from now on (each an authorized_keys line: options, then the key).
        func serve(_ lines: [String]) throws {
            try lines.map { $0 + "\n" }.joined().write(toFile: directory + "/served", atomically: true, encoding: .utf8)
            chmod(directory + "/served", 0o644)
        }

        func command(verifyRequired: Bool = false) -> PrivateSSHD.KeysCommand {
            PrivateSSHD.KeysCommand(argv: ["/bin/sh", directory + "/keys.sh"], verifyRequired: verifyRequired)
        }

        func remove() { _ = try? run(["/bin/rm", "-rf", directory]) }
    }

    @Test("sk- keys the command prints log in (ecdsa-sk, ed25519-sk); a key it does not print is refused before any signature; it runs as twofold-keys for the user, on every connection")
    func keysFromTheCommand() throws {
        let key = try SoftSecurityKey()
        defer { key.remove() }
        let ecdsa = try key.enroll(.ecdsa, name: "ecdsa")
        let ed25519 = try key.enroll(.ed25519, name: "ed25519")
        let unknown = try key.enroll(.ecdsa, name: "unknown")
        let standIn = try StandIn()
        defer { standIn.remove() }
        try standIn.serve([ecdsa.publicLine, ed25519.publicLine])
        let sshd = try PrivateSSHD(.keysCommand(standIn.command()), user: Self.testUser)
        defer { sshd.stop() }

        for file in [ecdsa, ed25519] {
            let login = try sshd.ssh(key: file, through: key, command: "echo twofold-ok; id -un")
            #expect(login.status == 0, "ssh: \(login.output)\nsshd: \(sshd.log)")
            #expect(login.output.contains("twofold-ok\n\(Self.testUser)"), "\(login.output)")
        }
        #expect(sshd.log.contains("Accepted publickey for \(Self.testUser) from 127.0.0.1"), "\(sshd.log)")
        #expect(sshd.log.contains(" ECDSA-SK SHA256:") && sshd.log.contains(" ED25519-SK SHA256:"), "\(sshd.log)")
        #expect(key.signatures() == ["sign ecdsa flags=0x01 pin=no -> flags=0x01", "sign ed25519 flags=0x01 pin=no -> flags=0x01"],
                "\(key.log())")

        let refused = try sshd.ssh(key: unknown, through: key, command: "echo twofold-ok")
        #expect(refused.status != 0)
        #expect(!refused.output.contains("twofold-ok"))
        #expect(key.signatures().count == 2, "sshd refused the unknown key's offer: nothing was signed: \(key.log())")

        // The command is asked again on the next connection: a key it no longer prints is refused.
        try standIn.serve([ed25519.publicLine])
        let revoked = try sshd.ssh(key: ecdsa, through: key, command: "echo twofold-ok")
        #expect(revoked.status != 0)
        #expect(!revoked.output.contains("twofold-ok"))
        let still = try sshd.ssh(key: ed25519, through: key, command: "echo twofold-ok")
        #expect(still.status == 0, "ssh: \(still.output)\nsshd: \(sshd.log)")

        #expect(!standIn.calls.isEmpty)
        #expect(standIn.calls.allSatisfy { $0 == "twofold-keys \(Self.testUser)" }, "\(standIn.calls)")
    }

    @Test("PubkeyAuthOptions verify-required, or the line's verify-required option: a signature without UV is refused, with UV it logs in",
          arguments: [true, false])
    func verifyRequired(inConfig: Bool) throws {
        let key = try SoftSecurityKey()
        defer { key.remove() }
        let file = try key.enroll(.ed25519, name: "uv", verifyRequired: true)
        let standIn = try StandIn()
        defer { standIn.remove() }
        try standIn.serve([inConfig ? file.publicLine : "verify-required " + file.publicLine])
        let sshd = try PrivateSSHD(.keysCommand(standIn.command(verifyRequired: inConfig)), user: Self.testUser)
        defer { sshd.stop() }

        let withoutUV = try sshd.ssh(key: file, through: key, command: "echo twofold-ok")
        #expect(withoutUV.status != 0)
        #expect(!withoutUV.output.contains("twofold-ok"))
        #expect(sshd.log.contains("rejected: user verification requirement not met"), "\(sshd.log)")
        // The key signed (its file asks for UV, the soft key answers without it): sshd refused the signature.
        #expect(key.signatures() == ["sign ed25519 flags=0x05 pin=no -> flags=0x01"], "\(key.log())")

        let withUV = try sshd.ssh(key: file, through: key, userVerified: true, command: "echo twofold-ok")
        #expect(withUV.status == 0, "ssh: \(withUV.output)\nsshd: \(sshd.log)")
        #expect(withUV.output.contains("twofold-ok"))
    }

    @Test("a key made with no-touch-required is refused unless its line says no-touch-required (which Twofold never serves)")
    func touchRequired() throws {
        let key = try SoftSecurityKey()
        defer { key.remove() }
        let file = try key.enroll(.ecdsa, name: "notouch", noTouchRequired: true)
        let line = file.publicLine
        let standIn = try StandIn()
        defer { standIn.remove() }
        try standIn.serve([line])
        let sshd = try PrivateSSHD(.keysCommand(standIn.command()), user: Self.testUser)
        defer { sshd.stop() }

        let untouched = try sshd.ssh(key: file, through: key, command: "echo twofold-ok")
        #expect(untouched.status != 0)
        #expect(sshd.log.contains("rejected: user presence (authenticator touch) requirement not met"), "\(sshd.log)")
        #expect(key.signatures() == ["sign ecdsa flags=0x00 pin=no -> flags=0x00"], "\(key.log())")

        try standIn.serve(["no-touch-required " + line])
        let allowed = try sshd.ssh(key: file, through: key, command: "echo twofold-ok")
        #expect(allowed.status == 0, "ssh: \(allowed.output)\nsshd: \(sshd.log)")
    }
}
