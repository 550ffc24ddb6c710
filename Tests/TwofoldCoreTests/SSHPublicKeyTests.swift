import Foundation
import Testing
import TwofoldCore
import TwofoldTestSupport

/// .pub lines as ssh-keygen writes them: parsed, checked, fingerprinted as `ssh-keygen -l` does.
@Suite("SSH public keys")
struct SSHPublicKeyTests {
    static func wire(_ fields: [[UInt8]]) -> [UInt8] { SSHTestKeys.wire(fields) }

    static func skEd25519(application: String = "ssh:") -> String {
        SSHTestKeys.skEd25519(seed: 7, application: application, comment: "alice@laptop")
    }

    @Test("keys from ssh-keygen parse, with the fingerprint ssh-keygen prints")
    func sshKeygen() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for type in ["ed25519", "ecdsa", "rsa"] {
            let path = directory + "/" + type
            let made = try ChildProcess.run(["/usr/bin/ssh-keygen", "-q", "-t", type, "-N", "", "-C", "test key", "-f", path])
            #expect(made.status == 0, "\(made.output)")
            let line = try String(contentsOfFile: path + ".pub", encoding: .utf8)
            let key = try SSHPublicKey(line: line.trimmingCharacters(in: .whitespacesAndNewlines))
            let printed = try ChildProcess.run(["/usr/bin/ssh-keygen", "-l", "-f", path + ".pub"]).output
            #expect(printed.contains(key.fingerprint), "\(printed) vs \(key.fingerprint)")
            #expect(!key.isSecurityKey && key.comment == "test key")
            #expect(key.authorizedKeysLine(options: []) == line.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    @Test("an sk- key is a security key; its line for sshd carries the options first")
    func securityKey() throws {
        let key = try SSHPublicKey(line: Self.skEd25519())
        #expect(key.isSecurityKey && key.comment == "alice@laptop")
        #expect(key.authorizedKeysLine(options: ["verify-required"]).hasPrefix("verify-required sk-ssh-ed25519@openssh.com AAAA"))
    }

    @Test("an SSH key rule: its four text forms round trip, anything else is refused; it serves what it admits, verify-required on sk- keys only")
    func rule() throws {
        for text in ["sk", "sk,verify-required", "any", "any,verify-required"] { #expect(SSHKeyRule(text: text)?.description == text) }
        #expect(SSHKeyRule(text: "any , verify-required")?.description == "any,verify-required")
        for bad in ["", "SK", "sk,", "sk,verify-required,verify-required", "verify-required", "sk,no-touch-required", "rsa"] {
            #expect(SSHKeyRule(text: bad) == nil, "\(bad)")
        }
        let sk = try SSHPublicKey(line: Self.skEd25519())
        let plain = try SSHPublicKey(line: "ssh-ed25519 " + Base64.encode(SSHTestKeys.wire([Array("ssh-ed25519".utf8), Array(repeating: 1, count: 32)])))
        let strict = SSHKeyRule(types: .sk, verifyRequired: true), loose = SSHKeyRule(types: .any, verifyRequired: true)
        #expect(strict.authorizedKeysLine(plain) == nil && strict.authorizedKeysLine(sk)?.hasPrefix("verify-required sk-") == true)
        #expect(loose.authorizedKeysLine(plain)?.hasPrefix("ssh-ed25519 ") == true)
    }

    @Test("refused: unknown types, options in front, bad base64, a blob of another type, trailing bytes, a non-ssh application")
    func refusals() {
        let ed = Base64.encode(Self.wire([Array("ssh-ed25519".utf8), Array(repeating: 1, count: 32)]))
        let bad = [
            "ssh-dss AAAAB3NzaC1kc3M= x",
            "command=\"/bin/sh\" ssh-ed25519 \(ed)",
            "ssh-ed25519 not*base64",
            "ssh-rsa \(ed)",
            "ssh-ed25519 " + Base64.encode(Self.wire([Array("ssh-ed25519".utf8), Array(repeating: 1, count: 32)]) + [0]),
            Self.skEd25519(application: "https://example.com"),
            "ssh-ed25519",
        ]
        for line in bad {
            #expect(throws: SSHPublicKey.Invalid.self, "\(line)") { _ = try SSHPublicKey(line: line) }
        }
    }

    @Test("base64 round trips and strictness")
    func base64() {
        for length in 0...40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            let encoded = Base64.encode(bytes)
            #expect(encoded == Data(bytes).base64EncodedString())
            #expect(Base64.decode(encoded) == bytes)
        }
        for bad in ["A", "AB=C", "A===", "ab c", "-_==", "AA==AA=="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }
}
