import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Enrollment, revocation, overrides, settings and the audit log through the admin calls. Runs
/// against every backend.
@Suite struct AdminTests {
    @Test(arguments: Backend.all) func enrollmentGoesFromPendingToActive(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            await #expect(throws: StoreError.notEnrolled("alice")) {
                try await store.activateEnrollment(user: "alice", recoveryCodes: [], verify: VerifyState(), atMillis: 1)
            }

            let hotp = OTPParameters(method: .hotp, algorithm: .sha512, digits: 7, period: 30)
            let first = try SecretBytes(randomCount: 20)
            try await store.beginEnrollment(user: "alice", factor: FactorName.first, secret: first, parameters: hotp, atMillis: 10)
            let pending = try #require(try await store.user("alice"))
            #expect(pending.status == .pending)
            #expect(pending.pendingFactor == FactorName.first && pending.factors.isEmpty)
            #expect(try await store.pendingEnrollment(user: "alice")?.parameters == hotp)
            #expect(try await store.pendingEnrollment(user: "alice")?.secret.constantTimeEquals(first) == true)
            #expect(pending.enrolledAtMillis == nil)

            let code = try RecoveryCodes.makeHash(canonical: "0000000000", pepper: keys.recoveryPepper)
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 15, policy: ThrottlePolicy())])
            try await store.activateEnrollment(user: "alice", recoveryCodes: [code], verify: VerifyState(counter: 3), atMillis: 20)
            let active = try #require(try await store.user("alice"))
            #expect(active.status == .active)
            #expect(active.factors.map(\.name) == [FactorName.first] && active.pendingFactor == nil)
            #expect(active.factors.first?.parameters == hotp)
            #expect(active.secret?.constantTimeEquals(first) == true)
            #expect(active.verify == VerifyState(counter: 3))
            #expect(active.throttle == ThrottleState())
            #expect(active.enrolledAtMillis == 20)
            #expect(active.recoveryCodesLeft == 1)
            await #expect(throws: StoreError.notEnrolled("alice")) {
                try await store.activateEnrollment(user: "alice", recoveryCodes: [], verify: VerifyState(), atMillis: 21)
            }

            // Re-enrolling leaves the active enrollment in force until the new one is confirmed.
            let second = try SecretBytes(randomCount: 32)
            let totp = OTPParameters()
            try await store.beginEnrollment(user: "alice", factor: FactorName.first, secret: second, parameters: totp, atMillis: 30)
            let during = try #require(try await store.user("alice"))
            #expect(during.status == .active)
            #expect(during.factors.first?.parameters == hotp)
            #expect(during.secret?.constantTimeEquals(first) == true)
            #expect(try await store.commit([.accept(user: "alice", use: .counter(factor: FactorName.first, counter: 3, offset: 0), atMillis: 31)]) == [.applied])

            try await store.activateEnrollment(user: "alice", recoveryCodes: [], verify: VerifyState(lastStep: 99), atMillis: 40)
            let after = try #require(try await store.user("alice"))
            #expect(after.status == .active)
            #expect(after.factors.map(\.name) == [FactorName.first] && after.factors.first?.parameters == totp)
            #expect(after.secret?.constantTimeEquals(second) == true)
            #expect(after.verify == VerifyState(lastStep: 99))
            #expect(after.recoveryCodesLeft == 0)
            #expect(try await store.commit([accept("alice", step: 99)]) == [.conflict])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func revokeRemovesTheEnrollmentAndCodes(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let code = try RecoveryCodes.makeHash(canonical: "1111111111", pepper: keys.recoveryPepper)
            try await enroll(store, "alice", codes: [code, code])
            try await store.setRequirement(user: "alice", .required)
            try await store.beginEnrollment(user: "alice", factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)

            #expect(try await store.revoke(user: "alice"))
            let alice = try #require(try await store.user("alice"))
            #expect(alice.status == nil)
            #expect(alice.secret == nil)
            #expect(alice.recoveryCodesLeft == 0)
            #expect(alice.verify == VerifyState())
            #expect(alice.requirement == .required)
            #expect(try await store.recoveryCodes(user: "alice").isEmpty)
            #expect(try await store.commit([accept("alice", step: 1)]) == [.conflict])
            await #expect(throws: StoreError.notEnrolled("alice")) {
                try await store.activateEnrollment(user: "alice", recoveryCodes: [], verify: VerifyState(), atMillis: 6)
            }
            #expect(try await store.revoke(user: "alice") == false)
            #expect(try await store.revoke(user: "nobody") == false)
            #expect(try await store.user("nobody") == nil)

            // A pending-only enrollment is revocable too.
            try await store.beginEnrollment(user: "bob", factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)
            #expect(try await store.revoke(user: "bob"))
            #expect(try await store.user("bob")?.status == nil)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func requirementAndFirstRequired(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await store.setRequirement(user: "carol", .exempt)
            let carol = try #require(try await store.user("carol"))
            #expect(carol.status == nil && carol.secret == nil && carol.requirement == .exempt)
            try await store.setRequirement(user: "carol", .policy)
            #expect(try await store.user("carol")?.requirement == .policy)

            #expect(try await store.markFirstRequired(user: "dave", atMillis: 500) == 500)
            #expect(try await store.markFirstRequired(user: "dave", atMillis: 900) == 500)
            #expect(try await store.user("dave")?.firstRequiredMillis == 500)
            try await enroll(store, "erin")
            #expect(try await store.markFirstRequired(user: "erin", atMillis: 42) == 42)
            #expect(try await store.user("erin")?.status == .active)
            try await store.unlock(user: "zed")
            #expect(try await store.user("zed") == nil)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func loginRecordReadsTheUserAndASettingTogether(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let secret = try await enroll(store, "alice")
            try await enroll(store, "alice", factor: "tablet")
            var read = try await store.loginRecord("alice", setting: "policy")
            #expect(read.setting == nil)
            #expect(read.record?.factors.map(\.name) == ["app", "tablet"])
            #expect(read.record?.factor("app")?.secret?.constantTimeEquals(secret) == true)
            try await store.setSetting("policy", value: #"{"require":"everyone"}"#)
            read = try await store.loginRecord("alice", setting: "policy")
            #expect(read.setting == #"{"require":"everyone"}"#)
            #expect(read.record?.name == "alice")
            // No such user: no record, the setting all the same.
            read = try await store.loginRecord("nobody", setting: "policy")
            #expect(read.record == nil)
            #expect(read.setting == #"{"require":"everyone"}"#)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func settingsAreStoredAndReplaced(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            var store = try await backend.makeStore(directory: dir, keys: keys)
            #expect(try await store.setting("policy") == nil)
            try await store.setSetting("policy", value: #"{"rules":[]}"#)
            try await store.setSetting("policy", value: #"{"rules":[1]}"#)
            try await store.setSetting("other", value: "")
            try await store.close()
            store = try await backend.makeStore(directory: dir, keys: keys)
            #expect(try await store.setting("policy") == #"{"rules":[1]}"#)
            #expect(try await store.setting("other") == "")
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func auditFiltersAndOrder(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            var records: [AuditRecord] = []
            for i in 0..<30 {
                records.append(AuditRecord(timeMillis: Int64(1_000 + i), action: "verify", user: i % 3 == 0 ? "alice" : "bob",
                                           service: "sshd", rhost: "10.0.0.\(i)", tty: "ssh", peerUID: i == 0 ? UInt32.max : UInt32(i),
                                           outcome: i % 5 == 0 ? "failure" : "success", reason: i % 5 == 0 ? "wrong code" : nil))
            }
            _ = try await store.commit(records.map { .audit($0) })

            let all = try await store.audit(AuditQuery())
            #expect(all.count == 30)
            #expect(all.map(\.timeMillis) == (0..<30).map { Int64(1_000 + $0) })
            #expect(all.compactMap(\.id) == all.compactMap(\.id).sorted())
            var withoutIDs = all
            for i in withoutIDs.indices { withoutIDs[i].id = nil }
            #expect(withoutIDs == records)

            #expect(try await store.audit(AuditQuery(user: "alice")).map(\.timeMillis) == stride(from: 1_000, to: 1_030, by: 3).map { Int64($0) })
            #expect(try await store.audit(AuditQuery(sinceMillis: 1_025)).map(\.timeMillis) == [1_025, 1_026, 1_027, 1_028, 1_029])
            #expect(try await store.audit(AuditQuery(outcome: "failure")).map(\.timeMillis) == [1_000, 1_005, 1_010, 1_015, 1_020, 1_025])
            // The limit keeps the newest, still oldest first.
            #expect(try await store.audit(AuditQuery(limit: 3)).map(\.timeMillis) == [1_027, 1_028, 1_029])
            #expect(try await store.audit(AuditQuery(user: "alice", sinceMillis: 1_010, outcome: "failure")).map(\.timeMillis) == [1_015])
            #expect(try await store.audit(AuditQuery(user: "bob", outcome: "failure", limit: 2)).map(\.timeMillis) == [1_020, 1_025])
            #expect(try await store.audit(AuditQuery(user: "nobody")).isEmpty)
            #expect(try await store.audit(AuditQuery(limit: 0)).isEmpty)

            // By action (doctor's last backup): the newest of that action, however many others came after.
            _ = try await store.commit([.audit(AuditRecord(timeMillis: 1_030, action: "backup", outcome: "success")),
                                        .audit(AuditRecord(timeMillis: 1_031, action: "backup", outcome: "failure"))]
                                       + (0..<5).map { .audit(AuditRecord(timeMillis: 1_032 + Int64($0), action: "verify", user: "bob", outcome: "success")) })
            #expect(try await store.audit(AuditQuery(outcome: "success", action: "backup", limit: 1)).map(\.timeMillis) == [1_030])
            #expect(try await store.audit(AuditQuery(action: "backup")).map(\.timeMillis) == [1_030, 1_031])
            #expect(try await store.audit(AuditQuery(action: "nothing")).isEmpty)
            try await store.close()
        }
    }
}
