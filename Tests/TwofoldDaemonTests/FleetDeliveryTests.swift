import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

extension HeavyDaemonSuites {
    /// Delivered codes in a fleet: the servers send (relays have no network of the tier's), the
    /// contacts and the send counts are the store's, shared by every server.
    @Suite("Delivered codes in a fleet")
    struct FleetDeliveryTests {
        @Test("a code sent for a login through one host is refused through another; each server sends, the contacts are shared")
        func codeBoundToHost() throws {
            let delivery = try DeliveryServiceProcess()
            let fleet = try Fleet(servers: 2, serverConfig: "delivery_socket = \(delivery.socketPath)")
            try fleet.setPolicy { $0.factorKinds = ["email"] }
            let imported = try fleet.servers[1].control(.contactImport([ContactImport(user: "fleetmail", channel: "email", value: "fm@example.com")]))
            guard case .importedMany(let outcomes) = imported, outcomes.allSatisfy({ $0.error == nil }) else { Issue.record("\(imported)"); return }
            let hostA = try fleet.relay("host-a", order: [0])
            let hostB = try fleet.relay("host-b", order: [1])

            #expect(try DeliveredCodeTests.login(hostA, "fleetmail") { _ in nil } == nil, "hang up at host-a's prompt")
            let codeForA = try #require(delivery.lastCode("email"))
            var promptB = ""
            let throughB = try DeliveredCodeTests.login(hostB, "fleetmail") { prompt in
                promptB = prompt
                return codeForA
            }
            #expect(throughB?.verdict == .failure, "host-a's code through host-b")
            #expect(promptB.hasPrefix("A code was sent by email"), "host-b sends its own: \(promptB)")
            #expect(delivery.messages("email").count == 2)
            #expect(delivery.messages("email").last?.contains("on host-b") == true)

            let ok = try DeliveredCodeTests.login(hostB, "fleetmail") { _ in delivery.lastCode("email") }
            #expect(ok?.verdict == .success, "\(String(describing: ok))")
            let entries = try DeliveredCodeTests.audit(fleet.servers[0], "fleetmail")
            #expect(entries.filter { $0.action == "send" }.map(\.host) == ["host-a", "host-b"])
            for server in fleet.servers {
                for code in delivery.messages("email").compactMap(DeliveryServiceProcess.code(in:)) {
                    #expect(!server.log.contains(code))
                }
            }
            for relay in [hostA, hostB] { #expect(!relay.log.contains(codeForA)) }
        }
    }
}
