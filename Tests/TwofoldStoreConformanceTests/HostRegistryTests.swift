import Foundation
import Testing
import TwofoldCore
import TwofoldStore

/// The host registry (fleet mode) and the host of audit records, through the store calls. Runs
/// against every backend.
@Suite struct HostRegistryTests {
    static let fingerprints = (1...4).map { String(repeating: String($0), count: 64) }

    /// The conflict `body` throws, or a recorded issue.
    func conflict(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            Issue.record("expected a conflict")
        } catch StoreError.conflict(let message) {
            return message
        } catch {
            Issue.record("expected a conflict, got \(error)")
        }
        return nil
    }

    @Test(arguments: Backend.all) func addIsIdempotentAndAFingerprintBelongsToOneHost(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let (one, two, three) = (Self.fingerprints[0], Self.fingerprints[1], Self.fingerprints[2])
            let first = HostCertificate(host: "host-a", fingerprint: one, notAfterMillis: 9_000, addedMillis: 100)
            try await store.addHostCertificate(first)
            // The same again (later, with another expiry) changes nothing.
            try await store.addHostCertificate(HostCertificate(host: "host-a", fingerprint: one, notAfterMillis: 9_999, addedMillis: 200))
            #expect(try await store.hostCertificates(host: nil) == [first])
            let message = await conflict { try await store.addHostCertificate(HostCertificate(host: "host-b", fingerprint: one, addedMillis: 300)) }
            #expect(message?.contains("host-a") == true, "\(message ?? "")")

            // A renewal beside the old one; another host; ordered by host, then by when added.
            let renewal = HostCertificate(host: "host-a", fingerprint: three, addedMillis: 400)
            let other = HostCertificate(host: "host-b", fingerprint: two, notAfterMillis: 5_000, addedMillis: 50)
            try await store.addHostCertificate(renewal)
            try await store.addHostCertificate(other)
            #expect(try await store.hostCertificates(host: nil) == [first, renewal, other])
            #expect(try await store.hostCertificates(host: "host-a") == [first, renewal])
            #expect(try await store.hostCertificates(host: "host-c").isEmpty)
            #expect(try await store.hostCertificate(fingerprint: two) == other)
            #expect(try await store.hostCertificate(fingerprint: Self.fingerprints[3]) == nil)
            try await store.close()

            let again = try await backend.makeStore(directory: dir, keys: keys)
            #expect(try await again.hostCertificates(host: nil) == [first, renewal, other])
            try await again.close()
        }
    }

    @Test(arguments: Backend.all) func revokingAHostRevokesEveryCertificateForGood(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let (one, two, three, four) = (Self.fingerprints[0], Self.fingerprints[1], Self.fingerprints[2], Self.fingerprints[3])
            try await store.addHostCertificate(HostCertificate(host: "host-a", fingerprint: one, addedMillis: 100))
            try await store.addHostCertificate(HostCertificate(host: "host-a", fingerprint: two, notAfterMillis: 7_000, addedMillis: 200))
            try await store.addHostCertificate(HostCertificate(host: "host-b", fingerprint: three, addedMillis: 300))

            #expect(try await store.revokeHost("host-a", atMillis: 1_000) == 2)
            #expect(try await store.revokeHost("host-a", atMillis: 2_000) == 0, "already revoked: the first time stays")
            #expect(try await store.revokeHost("host-z", atMillis: 2_000) == 0)
            #expect(try await store.hostCertificates(host: "host-a").map(\.revokedMillis) == [1_000, 1_000])
            #expect(try await store.hostCertificate(fingerprint: two)
                    == HostCertificate(host: "host-a", fingerprint: two, notAfterMillis: 7_000, addedMillis: 200, revokedMillis: 1_000))
            #expect(try await store.hostCertificate(fingerprint: three)?.revokedMillis == nil, "another host's certificates stay in force")

            // A revoked certificate never comes back, for its host or another.
            for host in ["host-a", "host-b"] {
                let message = await conflict { try await store.addHostCertificate(HostCertificate(host: host, fingerprint: one, addedMillis: 3_000)) }
                #expect(message?.contains("revoked") == true, "\(message ?? "")")
            }
            // The host itself may come back with a new certificate.
            try await store.addHostCertificate(HostCertificate(host: "host-a", fingerprint: four, addedMillis: 4_000))
            #expect(try await store.hostCertificates(host: "host-a").map(\.revokedMillis) == [1_000, 1_000, nil])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func auditRecordsKeepTheirHostAndFilterByIt(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let records = (0..<6).map { i in
                AuditRecord(timeMillis: Int64(1_000 + i), action: "verify", user: "alice", service: "sshd", outcome: "success",
                            host: [nil, "bastion-1", "web-2"][i % 3])
            }
            _ = try await store.commit(records.map { .audit($0) })
            var read = try await store.audit(AuditQuery())
            for i in read.indices { read[i].id = nil }
            #expect(read == records)
            #expect(try await store.audit(AuditQuery(host: "bastion-1")).map(\.timeMillis) == [1_001, 1_004])
            #expect(try await store.audit(AuditQuery(user: "alice", sinceMillis: 1_003, host: "web-2")).map(\.timeMillis) == [1_005])
            #expect(try await store.audit(AuditQuery(host: "bastion")).isEmpty, "an exact match")
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func lastSuccessHostsIsTheHostOfEachUsersLastSuccessfulLogin(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            func record(_ user: String, _ host: String?, action: String = "verify", outcome: String = "success", at time: Int64) -> StoreMutation {
                .audit(AuditRecord(timeMillis: time, action: action, user: user, outcome: outcome, host: host))
            }
            _ = try await store.commit([
                record("alice", "a-1", at: 1), record("alice", "a-2", at: 2),
                record("alice", "a-3", outcome: "failure", at: 3), record("alice", nil, at: 4),   // neither counts
                record("bob", "b-1", at: 5), record("bob", "b-2", action: "enroll", at: 6),
                record("carol", nil, at: 7),
            ])
            #expect(try await store.lastSuccessHosts(users: ["alice", "bob", "carol", "dave"]) == ["alice": "a-2", "bob": "b-1"])
            #expect(try await store.lastSuccessHosts(users: ["bob"]) == ["bob": "b-1"])
            #expect(try await store.lastSuccessHosts(users: []).isEmpty)

            // An attempt the store refuses at commit is audited as a failure: it does not count.
            _ = try await enroll(store, "erin")
            let attempt = { (host: String) in
                StoreMutation.auditAttempt(AuditRecord(timeMillis: 2_000, action: "verify", user: "erin", outcome: "success", host: host))
            }
            #expect(try await store.commit([accept("erin", step: 5), attempt("e-1")]).first == .applied)
            #expect(try await store.commit([accept("erin", step: 5), attempt("e-2")]).first == .conflict)
            #expect(try await store.lastSuccessHosts(users: ["erin", "alice"]) == ["erin": "e-1", "alice": "a-2"])
            try await store.close()
        }
    }
}
