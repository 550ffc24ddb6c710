import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

extension HeavyDaemonSuites {
    /// SSH keys through relays: every host serves what the tier has; while no server answers, a
    /// relay serves the lines it last got, within ssh_key_cache_seconds (and across its restart),
    /// and with the cache off it serves nothing.
    @Suite("SSH keys in a fleet")
    struct FleetSSHKeyTests {
        static func ask(_ relay: DaemonProcess, _ user: String) throws -> ControlResponse {
            try relay.control(.authorizedKeys(user: user))
        }

        @Test("each relay serves by its own host's rule: verify-required on host-a only; the server's own host by the default")
        func hostRuleThroughRelays() throws {
            let fleet = try Fleet(servers: 1)
            let (a, b) = (try fleet.relay("host-a"), try fleet.relay("host-b"))
            guard case .sshKeys = try fleet.servers[0].control(.sshKeyAdd(user: "hana", name: nil, line: SSHTestKeys.skEd25519(seed: 40), code: nil)) else {
                throw HarnessError("add")
            }
            guard case .policy(var policy) = try fleet.servers[0].control(.policyShow) else { throw HarnessError("policy") }
            policy.hostSSHKeys = ["host-a": "sk,verify-required"]
            #expect(try fleet.servers[0].control(.policySet(policy)) == .ok)
            func lines(_ daemon: DaemonProcess) throws -> [String] {
                guard case .authorizedKeys(let lines, _) = try daemon.control(.authorizedKeys(user: "hana")) else { throw HarnessError("ask") }
                return lines
            }
            #expect(try lines(a).map { $0.hasPrefix("verify-required ") } == [true])
            #expect(try lines(b).map { $0.hasPrefix("verify-required ") } == [false])
            #expect(try lines(fleet.servers[0]).map { $0.hasPrefix("verify-required ") } == [false])
        }

        @Test("served through relays; a revocation reaches every host; the cache serves during an outage, across a restart, never when off")
        func cacheDuringOutage() throws {
            let fleet = try Fleet(servers: 1)
            let cached = try fleet.relay("host-a")
            let uncached = try fleet.relay("host-b", extraConfig: "ssh_key_cache_seconds = 0")
            let (kept, revoked) = (SSHTestKeys.skEd25519(seed: 9), SSHTestKeys.skEd25519(seed: 10))
            for line in [kept, revoked] {
                guard case .sshKeys = try fleet.servers[0].control(.sshKeyAdd(user: "sam", name: nil, line: line, code: nil)) else { throw HarnessError("add") }
            }
            #expect(try fleet.servers[0].control(.sshKeyRemove(user: "sam", name: "sk-ed25519-2", code: nil)) == .ok)
            for relay in [cached, uncached] {
                guard case .authorizedKeys(let lines, let fromCache) = try Self.ask(relay, "sam") else { throw HarnessError("ask") }
                #expect(lines.count == 1 && lines[0].contains(kept.split(separator: " ")[1]) && !fromCache, "\(lines)")
            }
            _ = fleet.servers[0].stop()
            guard case .authorizedKeys(let lines, true) = try Self.ask(cached, "sam") else { throw HarnessError("no cached answer during the outage") }
            #expect(lines.count == 1)
            if case .error(.unavailable, _) = try Self.ask(uncached, "sam") {} else { Issue.record("a relay without a cache served keys") }
            if case .error(.unavailable, _) = try Self.ask(cached, "someone-else") {} else { Issue.record("a user never served was answered") }
            _ = cached.stop()
            try cached.start()
            guard case .authorizedKeys(let again, true) = try Self.ask(cached, "sam") else { throw HarnessError("the cache did not survive a restart") }
            #expect(again == lines)
        }
    }
}
