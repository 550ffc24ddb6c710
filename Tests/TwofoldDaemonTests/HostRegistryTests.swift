import Foundation
import Testing
import TwofoldCore
import TwofoldDaemon
import TwofoldProtocol
import TwofoldSQLite
import TwofoldStore
import TwofoldTestSupport

/// The host registry's control requests against a real daemon (what twofoldctl never sends
/// included), and the host of the last successful login in `status`, `listUsers` and the CLI.
@Suite struct HostRegistryTests {
    static let fingerprint = (0..<32).map { String(format: "%02X", $0 * 7 % 256) }.joined(separator: ":")
    static var hex: String { fingerprint.replacingOccurrences(of: ":", with: "").lowercased() }

    func expectError(_ response: ControlResponse, _ code: ControlErrorCode, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .error(code, let message) = response, message.contains(text) else {
            Issue.record("expected \(code) with '\(text)', got \(response)", sourceLocation: sourceLocation)
            return
        }
    }

    @Test func hostRequestsAreCheckedNormalisedAndAudited() throws {
        let daemon = try DaemonProcess()
        let later = Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000
        expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: nil, fingerprint: nil, notAfterMillis: nil)), .invalidRequest, "not both or neither")
        expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: "x", fingerprint: Self.hex, notAfterMillis: nil)), .invalidRequest, "not both or neither")
        expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: "x", fingerprint: nil, notAfterMillis: later)), .invalidRequest, "its own is used")
        expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: "x", fingerprint: nil, notAfterMillis: nil)), .invalidRequest, "not a PEM")
        for name in ["", "edge_1", "-edge", "edge-", "a..b", ".a", String(repeating: "a", count: 64), String(repeating: "abc.", count: 64)] {
            expectError(try daemon.control(.hostAdd(name: name, certificatePEM: nil, fingerprint: Self.hex, notAfterMillis: nil)), .invalidRequest, "DNS name")
        }
        for print in [String(Self.hex.dropLast()), Self.hex + "0", String(Self.hex.dropLast()) + "g", String(Self.fingerprint.dropLast(3))] {
            expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: nil, fingerprint: print, notAfterMillis: nil)), .invalidRequest, "64 hex digits")
        }
        expectError(try daemon.control(.hostAdd(name: "edge-1", certificatePEM: nil, fingerprint: Self.hex, notAfterMillis: 1_000)), .invalidRequest, "expired")

        // Upper case and colons are the same host and fingerprint.
        let added = try daemon.control(.hostAdd(name: "Edge-1.Example.COM", certificatePEM: nil, fingerprint: Self.fingerprint, notAfterMillis: later))
        guard case .hosts(let infos) = added, let info = infos.first, infos.count == 1 else { Issue.record("\(added)"); return }
        #expect(info.name == "edge-1.example.com" && info.fingerprint == Self.hex && info.notAfterMillis == later && info.revokedMillis == nil)
        #expect(try daemon.control(.hostList) == .hosts([info]))
        expectError(try daemon.control(.hostAdd(name: "edge-2", certificatePEM: nil, fingerprint: Self.hex, notAfterMillis: nil)), .conflict, "edge-1.example.com")

        expectError(try daemon.control(.hostRevoke(name: "edge-9")), .notFound, "no host named 'edge-9'")
        guard case .hosts(let revoked) = try daemon.control(.hostRevoke(name: "EDGE-1.example.com")) else { Issue.record("revoke"); return }
        #expect(revoked.count == 1 && revoked[0].revokedMillis != nil)
        expectError(try daemon.control(.hostRevoke(name: "edge-1.example.com")), .notFound, "revoked before")

        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 100, host: "edge-1.example.com")) else {
            Issue.record("audit")
            return
        }
        #expect(entries.map(\.action) == ["host", "host"] && entries.allSatisfy { $0.host == "edge-1.example.com" && $0.user == nil }, "\(entries)")
        #expect(entries.first?.reason == "certificate \(Self.hex) registered for host 'edge-1.example.com', expires "
                + Date(timeIntervalSince1970: Double(later) / 1000).formatted(.iso8601), "\(entries)")
        #expect(daemon.log.contains("host=edge-1.example.com"), "the audit's log line names the host")
    }

    @Test func statusAndTheUsersListNameTheHostOfTheLastSuccess() async throws {
        let daemon = try DaemonProcess()
        let alice = try daemon.provision("alice")
        _ = try daemon.provision("bob")
        #expect(try daemon.login("alice", answer: alice.code()).verdict == .success)
        #expect(try daemon.status("alice").lastSuccessHost == nil, "a login of the daemon's own host names none")

        // A login through a relay, as the fleet's daemon will audit it (with the relay's host).
        daemon.stop()
        let state = daemon.directory + "/state"
        let store = try SQLiteStore(path: state + "/twofold.sqlite", keys: try SealingKeys.loadOrCreate(keyFile: state + "/twofold.key"))
        let record = AuditRecord(timeMillis: Int64(Date().timeIntervalSince1970 * 1000), action: "verify", user: "alice", service: "sshd",
                                 outcome: "success", host: "bastion-1")
        _ = try await store.commit([.audit(record)])
        try await store.close()
        try await offPool { try daemon.start() }

        #expect(try daemon.status("alice").lastSuccessHost == "bastion-1")
        #expect(try daemon.status("bob").lastSuccessHost == nil)
        guard case .users(let users) = try daemon.control(.listUsers(after: nil, limit: 10)) else { Issue.record("listUsers"); return }
        #expect(users.map(\.lastSuccessHost) == ["bastion-1", nil])
        for arguments in [["status", "--user", "alice"], ["user", "show", "alice"], ["users"]] {
            let shown = try run([TestPaths.twofoldctl] + arguments + ["--socket", daemon.socketPath])
            #expect(shown.status == 0 && shown.output.contains(" on bastion-1"), "\(arguments): \(shown.output)")
        }
    }
}
