// The software security key of the SSH tests (pam/tests/sk/sk_soft.so) proved with OpenSSH itself
// before any sshd test relies on it: pam/tests/sk/sk_check.sh enrolls ecdsa-sk and ed25519-sk keys
// through it with ssh-keygen, signs with them and checks the signatures and their flags with
// ssh-keygen -Y verify.

import Foundation
import Testing
import TwofoldTestSupport

@Suite("Software security key through OpenSSH")
struct SoftSecurityKeyTests {
    @Test("ssh-keygen enrolls and signs through sk_soft.so; -Y verify accepts the signatures, with the flags the knobs set")
    func everyScenario() throws {
        try SoftSecurityKey.build()
        let (status, output) = try ChildProcess.run(["/bin/bash", SoftSecurityKey.checkScript],
                                                   environment: ["PATH": "/usr/bin:/bin"])
        #expect(status == 0, "sk_check.sh exited \(status):\n\(output)")
        #expect(output.contains("sk_check.sh: all scenarios passed"), "\(output)")
    }

    @Test("A key enrolled through SoftSecurityKey is an sk- key whose calls are in its log")
    func enrollThroughTheHelper() throws {
        let key = try SoftSecurityKey()
        defer { key.remove() }
        let ecdsa = try key.enroll(.ecdsa, name: "ecdsa")
        let ed25519 = try key.enroll(.ed25519, name: "ed25519", verifyRequired: true)
        #expect(ecdsa.publicLine.hasPrefix("sk-ecdsa-sha2-nistp256@openssh.com AAAA"), "\(ecdsa.publicLine)")
        #expect(ecdsa.publicLine.hasSuffix(" ecdsa"))
        #expect(ed25519.publicLine.hasPrefix("sk-ssh-ed25519@openssh.com AAAA"), "\(ed25519.publicLine)")
        #expect(key.log() == ["version", "enroll ecdsa flags=0x01 pin=no -> 0",
                              "version", "enroll ed25519 flags=0x05 pin=no -> 0"], "\(key.log())")
    }
}
