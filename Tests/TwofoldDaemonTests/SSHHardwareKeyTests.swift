import Foundation
import Testing
import TwofoldDaemon
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The SSH tests end to end: OpenSSH's client with the software security key (sk_soft.so
/// as its SecurityKeyProvider), a private sshd on loopback whose AuthorizedKeysCommand is
/// `twofoldctl authorized-keys`, run as the dedicated twofold-keys account, against the real daemon
/// (and in a fleet, relays).
@Suite("sshd with hardware keys served by twofoldd", .serialized)
struct SSHHardwareKeyTests {
    static let user = "twofold-ssh"

    static func keysCommand(_ socket: String) -> PrivateSSHD.KeysCommand {
        PrivateSSHD.KeysCommand(argv: [TestPaths.twofoldctl, "--socket", socket, "authorized-keys"])
    }

    /// twofold-keys must reach the daemon's socket: the test directory is root's, 0700.
    static func openToKeysAccount(_ daemon: DaemonProcess) {
        chmod(daemon.directory, 0o755)
    }

    static func setPolicy(_ daemon: DaemonProcess, _ change: (inout PolicyDocument) -> Void) throws {
        guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("policy show") }
        change(&policy)
        guard try daemon.control(.policySet(policy)) == .ok else { throw HarnessError("policy set") }
    }

    @Test("a registered sk- key logs in; with verify-required (from the host's rule, the default) a signature without UV is refused, not when the user's own rule says sk; a revoked key is refused at the next connection")
    func singleHost() throws {
        let daemon = try DaemonProcess(extraConfig: "authorized_keys_user = twofold-keys")
        Self.openToKeysAccount(daemon)
        let key = try SoftSecurityKey()
        defer { key.remove() }
        let file = try key.enroll(.ed25519, name: "laptop")
        let stranger = try key.enroll(.ecdsa, name: "stranger")
        guard case .sshKeys = try daemon.control(.sshKeyAdd(user: Self.user, name: nil, line: file.publicLine, code: nil)) else {
            throw HarnessError("not registered")
        }
        let sshd = try PrivateSSHD(.keysCommand(Self.keysCommand(daemon.socketPath)), user: Self.user)
        defer { sshd.stop() }
        let ok = try sshd.ssh(key: file, through: key, command: "echo twofold-ok")
        #expect(ok.status == 0 && ok.output.contains("twofold-ok"), "\(ok.output)\n\(sshd.log)")
        #expect(try sshd.ssh(key: stranger, through: key, command: "true").status != 0, "an unregistered key")

        // The chain, each level through sshd: this host's rule asks for verify-required...
        try Self.setPolicy(daemon) { $0.hostSSHKeys = [HostName.local: "sk,verify-required"] }
        #expect(try sshd.ssh(key: file, through: key, userVerified: false, command: "true").status != 0, "host level: verify-required")
        // ... the user's own rule comes first ...
        #expect(try daemon.control(.setSSHKeyRule(user: Self.user, rule: "sk")) == .ok)
        #expect(try sshd.ssh(key: file, through: key, userVerified: false, command: "true").status == 0, "user level: a touch is enough")
        // ... and without both, the default.
        #expect(try daemon.control(.setSSHKeyRule(user: Self.user, rule: nil)) == .ok)
        try Self.setPolicy(daemon) { $0.hostSSHKeys = [:]; $0.sshVerifyRequired = true }
        let noUV = try sshd.ssh(key: file, through: key, userVerified: false, command: "true")
        #expect(noUV.status != 0, "verify-required, no UV: \(noUV.output)")
        #expect(sshd.log.contains("user verification requirement not met"), "\(sshd.log)")
        #expect(try sshd.ssh(key: file, through: key, userVerified: true, command: "true").status == 0)

        #expect(try daemon.control(.sshKeyRemove(user: Self.user, name: nil, code: nil)) == .ok)
        #expect(try sshd.ssh(key: file, through: key, userVerified: true, command: "true").status != 0, "a revoked key")
    }
}

extension HeavyDaemonSuites {
    @Suite("sshd with hardware keys through relays", .serialized)
    struct FleetSSHHardwareKeyTests {
        @Test("a key revoked on a server is refused on every host at the next connection; with the tier stopped a relay's cache still serves")
        func everyHost() throws {
            let fleet = try Fleet(servers: 1)
            let relays = try ["host-a", "host-b"].map { try fleet.relay($0, extraConfig: "authorized_keys_user = twofold-keys") }
            relays.forEach(SSHHardwareKeyTests.openToKeysAccount)
            let key = try SoftSecurityKey()
            defer { key.remove() }
            let (kept, revoked) = (try key.enroll(.ed25519, name: "kept"), try key.enroll(.ecdsa, name: "revoked"))
            for (name, file) in [("kept", kept), ("revoked", revoked)] {
                guard case .sshKeys = try fleet.servers[0].control(.sshKeyAdd(user: SSHHardwareKeyTests.user, name: name, line: file.publicLine, code: nil)) else {
                    throw HarnessError("add")
                }
            }
            let hosts = try relays.map { try PrivateSSHD(.keysCommand(SSHHardwareKeyTests.keysCommand($0.socketPath)), user: SSHHardwareKeyTests.user) }
            defer { hosts.forEach { $0.stop() } }
            for sshd in hosts { #expect(try sshd.ssh(key: revoked, through: key, command: "true").status == 0, "\(sshd.log)") }
            #expect(try fleet.servers[0].control(.sshKeyRemove(user: SSHHardwareKeyTests.user, name: "revoked", code: nil)) == .ok)
            for sshd in hosts {
                #expect(try sshd.ssh(key: revoked, through: key, command: "true").status != 0, "revoked, on \(sshd.port)")
                #expect(try sshd.ssh(key: kept, through: key, command: "true").status == 0)
            }
            _ = fleet.servers[0].stop()
            let duringOutage = try hosts[0].ssh(key: kept, through: key, command: "echo cached")
            #expect(duringOutage.status == 0 && duringOutage.output.contains("cached"), "\(duringOutage.output)\n\(hosts[0].log)")
            #expect(try hosts[0].ssh(key: revoked, through: key, command: "true").status != 0, "the cache holds the revocation")
        }
    }
}
