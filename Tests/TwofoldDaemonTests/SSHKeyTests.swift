import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldDaemon
import TwofoldProtocol
import TwofoldTestSupport

/// SSH public keys through the real daemon: the registry, the lines served to sshd with the
/// policy's options, who may ask for them.
@Suite("twofoldd: SSH keys")
struct SSHKeyTests {
    /// A .pub line of a security key (sk-ssh-ed25519), made up: sshd never sees these.
    static func skLine(_ seed: UInt8, comment: String = "key") -> String {
        SSHTestKeys.skEd25519(seed: seed, comment: comment)
    }

    static func lines(_ daemon: DaemonProcess, _ user: String) throws -> [String]? {
        guard case .authorizedKeys(let lines, _) = try daemon.control(.authorizedKeys(user: user)) else { return nil }
        return lines
    }

    @Test("registered keys are served; verify-required when the policy asks; other types only when it allows them")
    func served() throws {
        let daemon = try DaemonProcess()
        let first = Self.skLine(1), second = Self.skLine(2)
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "sara", name: nil, line: first, code: nil)) else { throw HarnessError("not added") }
        if case .sshKeys(let added) = try daemon.control(.sshKeyAdd(user: "sara", name: "spare", line: second, code: nil)) {
            #expect(added.map(\.name) == ["spare"])
        } else { Issue.record("not added") }
        #expect(try Self.lines(daemon, "sara")?.count == 2)
        #expect(try Self.lines(daemon, "nobody-here") == [])
        let ed = try #require(try? ChildProcess.run(["/bin/sh", "-c", "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && cat $d/k.pub && rm -r $d"]).output)
        if case .error(.permissionDenied, let message) = try daemon.control(.sshKeyAdd(user: "sara", name: nil, line: ed, code: nil)) {
            #expect(message.contains("only hardware-backed"))
        } else { Issue.record("a plain key under the sk-only policy") }

        guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("policy") }
        policy.sshVerifyRequired = true
        policy.sshKeyTypes = "any"
        #expect(try daemon.control(.policySet(policy)) == .ok)
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "sara", name: "plain", line: ed, code: nil)) else { throw HarnessError("plain key") }
        let served = try #require(try Self.lines(daemon, "sara"))
        #expect(served.filter { $0.hasPrefix("verify-required sk-ssh-ed25519@openssh.com ") }.count == 2, "\(served)")
        #expect(served.contains { $0.hasPrefix("ssh-ed25519 ") } && !served.contains { $0.contains("no-touch-required") })
        // Back to sk only: the plain key stays registered but is no longer served.
        policy.sshKeyTypes = "sk"
        #expect(try daemon.control(.policySet(policy)) == .ok)
        #expect(try Self.lines(daemon, "sara")?.count == 2)
    }

    @Test("the SSH key rule follows the chain: the user's own › this host's (name over pattern) › the default; policy explain names the level; audited")
    func chain() throws {
        let daemon = try DaemonProcess()
        let here = HostName.local
        let sk = Self.skLine(30)
        let plain = "ssh-ed25519 " + Base64.encode(SSHTestKeys.wire([Array("ssh-ed25519".utf8), Array(repeating: 7, count: 32)])) + " plain"
        func explained() throws -> (String?, String?) {
            guard case .policyExplanation(let e) = try daemon.control(.policyExplain(user: "rita", service: nil, host: nil)) else { throw HarnessError("explain") }
            return (e.sshKeys, e.sshKeysBecause)
        }
        func setHosts(_ hosts: [String: String]) throws -> ControlResponse {
            guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("policy") }
            policy.hostSSHKeys = hosts
            return try daemon.control(.policySet(policy))
        }
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "rita", name: nil, line: sk, code: nil)) else { throw HarnessError("sk key") }
        // A pattern for other hosts changes nothing here; this host's pattern does, and its own name wins over the pattern.
        #expect(try setHosts(["no-such-host-*": "any,verify-required"]) == .ok)
        if case .error(.permissionDenied, let message) = try daemon.control(.sshKeyAdd(user: "rita", name: nil, line: plain, code: nil)) {
            #expect(message.contains("default: sk"), "\(message)")
        } else { Issue.record("a plain key under the default sk rule") }
        #expect(try explained() == ("sk", "default: sk"))
        #expect(try setHosts(["*": "sk,verify-required", here: "any"]) == .ok)
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "rita", name: "plain", line: plain, code: nil)) else { throw HarnessError("plain key under this host's any") }
        var served = try #require(try Self.lines(daemon, "rita"))
        #expect(served.count == 2 && !served.contains { $0.hasPrefix("verify-required") }, "\(served)")
        #expect(try explained() == ("any", "host \(here): any"))
        #expect(try setHosts(["*": "sk,verify-required"]) == .ok)
        served = try #require(try Self.lines(daemon, "rita"))
        #expect(served.count == 1 && served[0].hasPrefix("verify-required sk-ssh-ed25519@openssh.com "), "\(served)")
        #expect(try explained() == ("sk,verify-required", "host \(here) (*): sk,verify-required"))
        // The user's own rule comes first; back to default, the host's again.
        #expect(try daemon.control(.setSSHKeyRule(user: "rita", rule: "any")) == .ok)
        served = try #require(try Self.lines(daemon, "rita"))
        #expect(served.count == 2 && !served.contains { $0.hasPrefix("verify-required") }, "\(served)")
        #expect(try explained() == ("any", "admin override: any"))
        #expect(try daemon.control(.setSSHKeyRule(user: "rita", rule: nil)) == .ok)
        #expect(try Self.lines(daemon, "rita")?.count == 1)
        // Bad rules are refused whole, and nothing changes.
        if case .error(.invalidRequest, _) = try daemon.control(.setSSHKeyRule(user: "rita", rule: "sk,no-touch-required")) {} else {
            Issue.record("a bad user rule was taken")
        }
        if case .error(.invalidRequest, let message) = try setHosts(["*": "rsa"]) { #expect(message.contains("SSH keys")) } else {
            Issue.record("a bad host rule was taken")
        }
        #expect(try explained().0 == "sk,verify-required")
        guard case .audit(let records) = try daemon.control(.audit(user: "rita", sinceMillis: nil, outcome: nil, limit: 50)) else { throw HarnessError("audit") }
        #expect(records.contains { $0.reason?.contains("SSH key rule set to any") == true }, "\(records.map(\.reason))")
        #expect(records.contains { $0.reason?.contains("SSH key rule set to policy") == true })
    }

    @Test("an import is all or none: one refused line stores nothing, and every other line says so")
    func importAllOrNone() throws {
        let daemon = try DaemonProcess()
        let good = SSHKeyImport(user: "ivy", name: nil, line: SSHTestKeys.skEd25519(seed: 20))
        let plain = SSHKeyImport(user: "ivy", name: nil, line: "ssh-ed25519 " + Base64.encode(SSHTestKeys.wire([Array("ssh-ed25519".utf8), Array(repeating: 3, count: 32)])))
        guard case .importedMany(let refused) = try daemon.control(.sshKeyImport([good, plain])) else { throw HarnessError("import") }
        #expect(refused.allSatisfy { $0.error != nil } && refused[0].error?.contains("not imported") == true, "\(refused)")
        #expect(try Self.lines(daemon, "ivy") == [])
        guard case .importedMany(let done) = try daemon.control(.sshKeyImport([good])) else { throw HarnessError("import") }
        let served = try Self.lines(daemon, "ivy")
        #expect(done.allSatisfy { $0.error == nil } && served?.count == 1)
    }

    @Test("one key, one account; names unique per user; removal one by one or all (admin); revoke removes them")
    func registry() throws {
        let daemon = try DaemonProcess()
        let line = Self.skLine(3)
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "tom", name: "blue", line: line, code: nil)) else { throw HarnessError("add") }
        if case .error(.conflict, _) = try daemon.control(.sshKeyAdd(user: "tina", name: nil, line: line, code: nil)) {} else { Issue.record("one key, two accounts") }
        if case .error(.conflict, _) = try daemon.control(.sshKeyAdd(user: "tom", name: "blue", line: Self.skLine(4), code: nil)) {} else { Issue.record("a taken name") }
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: "tom", name: nil, line: Self.skLine(5), code: nil)) else { throw HarnessError("add 2") }
        guard case .sshKeys(let all) = try daemon.control(.sshKeyList(user: nil, all: true)) else { throw HarnessError("list") }
        #expect(all.map(\.name) == ["blue", "sk-ed25519"] && all.allSatisfy { $0.fingerprint.hasPrefix("SHA256:") })
        #expect(try daemon.control(.sshKeyRemove(user: "tom", name: "blue", code: nil)) == .ok)
        #expect(try Self.lines(daemon, "tom")?.count == 1)
        #expect(try daemon.control(.revoke(user: "tom")) == .ok)
        #expect(try Self.lines(daemon, "tom") == [])
    }
}

