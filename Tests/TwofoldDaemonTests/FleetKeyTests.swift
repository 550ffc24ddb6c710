import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

extension HeavyDaemonSuites {
    /// FIDO2 keys in a fleet: a key registered through one host works through every other, its
    /// counter is the store's (a clone is caught on another host), and an admin's revocation holds
    /// everywhere at the next login.
    @Suite("FIDO2 keys in a fleet")
    struct FleetKeyTests {
        @Test("registered through host-a, used through host-b, cloned through host-a, revoked on a server")
        func keyAcrossHosts() throws {
            let fleet = try Fleet(servers: 2, serverConfig: "fido2_rp_id = \(KeyLoginTests.rpID)")
            try fleet.setPolicy { $0.factorKinds = ["totp", "recovery", "fido2"] }
            let hostA = try fleet.relay("host-a", order: [0])
            let hostB = try fleet.relay("host-b", order: [1])
            // root on host-a registers its own key (no factor yet: no code asked).
            let key = try SoftKey()
            guard case .keys(let added) = try KeyLoginTests.register(key, user: nil, on: hostA) else { throw HarnessError("not registered through host-a") }
            #expect(added.map(\.user) == ["root"])

            let throughB = try KeyLoginTests.login("root", on: hostB, key: { key.assert($0) })
            #expect(throughB.verdict == .success, "\(throughB.texts)")
            // A clone replays that counter through the other host and the other server.
            let clone = try KeyLoginTests.login("root", on: hostA, key: { key.assert($0, counter: key.counter) })
            #expect(clone.verdict == .failure, "\(clone.texts)")
            let audit = try KeyLoginTests.auditReasons(fleet.servers[1], user: "root")
            #expect(audit.contains { $0.contains("cloned security key 'key'?") }, "\(audit)")

            #expect(try fleet.servers[1].control(.keyRemove(user: "root", name: nil, code: nil)) == .ok)
            let revoked = try KeyLoginTests.login("root", on: hostA, key: { key.assert($0) })
            #expect(revoked.verdict != .success)
            #expect(!revoked.messages.contains { if case .promptEchoOff(_, _?) = $0 { true } else { false } }, "no key step after revocation")
        }
    }
}
