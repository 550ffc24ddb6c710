import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Failures, delay and lock, decided at commit; recovery codes single use. Runs against every backend.
@Suite struct ThrottleAndRecoveryTests {
    let policy = ThrottlePolicy(maxFailures: 3, baseDelayMillis: 1_000, maxDelayMillis: 30_000, lockDurationMillis: 60_000)

    @Test(arguments: Backend.all) func failuresCountLockAndPersistAcrossReopen(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            var store = try await backend.makeStore(directory: dir, keys: keys)
            try await enroll(store, "alice")
            let t0: Int64 = 1_700_000_000_000

            let first = try await store.commit([.recordFailure(user: "alice", atMillis: t0, policy: policy)])
            #expect(first == [.appliedFailure(ThrottleState(failures: 1, notBeforeMillis: t0 + 1_000))])
            // Two failures in one batch see each other's effect.
            let more = try await store.commit([.recordFailure(user: "alice", atMillis: t0 + 2_000, policy: policy),
                                               .recordFailure(user: "alice", atMillis: t0 + 5_000, policy: policy)])
            #expect(more == [.appliedFailure(ThrottleState(failures: 2, notBeforeMillis: t0 + 4_000)),
                             .appliedFailure(ThrottleState(failures: 3, lockedUntilMillis: t0 + 65_000))])

            try await store.close()
            store = try await backend.makeStore(directory: dir, keys: keys)
            let locked = try #require(try await store.user("alice"))
            #expect(locked.throttle == ThrottleState(failures: 3, lockedUntilMillis: t0 + 65_000))
            #expect(Throttle.admit(locked.throttle, nowMillis: t0 + 6_000, policy: policy) == .locked(untilMillis: t0 + 65_000))

            // Unlock clears it durably.
            try await store.unlock(user: "alice")
            try await store.close()
            store = try await backend.makeStore(directory: dir, keys: keys)
            #expect(try await store.user("alice")?.throttle == ThrottleState())

            // A success resets the count.
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: t0 + 70_000, policy: policy)])
            #expect(try await store.user("alice")?.throttle.failures == 1)
            #expect(try await store.commit([accept("alice", step: 3, at: t0 + 71_000)]) == [.applied])
            let reset = try #require(try await store.user("alice"))
            #expect(reset.throttle == ThrottleState())
            #expect(reset.lastSuccessMillis == t0 + 71_000)
            try await store.close()
        }
    }

    /// Parallel dialogs each read the throttle state when they start; the lock and the delay are
    /// decided again where an attempt commits, from the state the transaction reads.
    @Test(arguments: Backend.all) func lockAndDelayAreDecidedAtCommit(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            let t0: Int64 = 1_700_000_000_000
            // A burst committed in one batch: the first failure sets a delay, so the right code behind
            // it is refused and counted; the third failure locks; the count is exact.
            let burst = try await store.commit([
                .recordFailure(user: "alice", atMillis: t0, policy: policy),
                accept("alice", step: 10, at: t0, policy: policy),
                .auditAttempt(AuditRecord(timeMillis: t0, action: "verify", user: "alice", outcome: "success", reason: "code at offset 0")),
                .recordFailure(user: "alice", atMillis: t0, policy: policy),
            ])
            let locked = ThrottleState(failures: 3, lockedUntilMillis: t0 + 60_000)
            #expect(burst == [.appliedFailure(ThrottleState(failures: 1, notBeforeMillis: t0 + 1_000)),
                              .throttled(ThrottleState(failures: 2, notBeforeMillis: t0 + 2_000)),
                              .applied,
                              .appliedFailure(locked)])
            // The audit says what happened, not what was hoped for.
            let audit = try await store.audit(AuditQuery(user: "alice"))
            #expect(audit.map(\.outcome) == ["failure"])
            #expect(audit.first?.reason == "refused at commit: a throttle delay was in force")
            // The refused right code is used up all the same: no replay once the lock is over.
            #expect(try await store.user("alice")?.verify.lastStep == 10)

            // While locked, a right code is refused and changes nothing (the lock is not extended).
            let during = try await store.commit([
                accept("alice", step: 11, at: t0 + 30_000, policy: policy),
                .auditAttempt(AuditRecord(timeMillis: t0 + 30_000, action: "verify", user: "alice", outcome: "success")),
                .accept(user: "alice", use: .recoveryCode(index: 0), atMillis: t0 + 30_000, policy: policy),
                .recordFailure(user: "alice", atMillis: t0 + 30_000, policy: policy),
            ])
            #expect(during == [.throttled(locked), .applied, .throttled(locked), .appliedFailure(locked)])
            #expect(try await store.audit(AuditQuery(user: "alice")).last?.outcome == "locked")
            #expect(try await store.user("alice")?.throttle == locked)

            // Once the lock is over, a later step is accepted and clears everything.
            #expect(try await store.commit([accept("alice", step: 12, at: t0 + 60_000, policy: policy)]) == [.applied])
            #expect(try await store.user("alice")?.throttle == ThrottleState())
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func consumeStepUsesUpACodeWithoutALogin(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            #expect(try await store.commit([.consume(user: "alice", use: .timeStep(factor: FactorName.first, step: 40, offset: 0, verify: VerifyState(lastStep: 40)))]) == [.applied])
            #expect(try await store.commit([.consume(user: "alice", use: .timeStep(factor: FactorName.first, step: 40, offset: 0, verify: VerifyState(lastStep: 40)))]) == [.conflict])
            let alice = try #require(try await store.user("alice"))
            #expect(alice.verify.lastStep == 40)
            #expect(alice.lastSuccessMillis == nil)
            #expect(try await store.commit([accept("alice", step: 40, at: 5)]) == [.conflict])
            #expect(try await store.commit([accept("alice", step: 41, at: 5)]) == [.applied])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func failureForUnknownUserIsConflictAndCreatesNothing(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            #expect(try await store.commit([.recordFailure(user: "mallory", atMillis: 1, policy: policy)]) == [.conflict])
            #expect(try await store.user("mallory") == nil)
            #expect(try await store.listUsers(after: nil, limit: 10).isEmpty)
            // A bare row (an override) does count failures.
            try await store.setRequirement(user: "mallory", .required)
            #expect(try await store.commit([.recordFailure(user: "mallory", atMillis: 1, policy: policy)])
                    == [.appliedFailure(ThrottleState(failures: 1, notBeforeMillis: 1_001))])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func recoveryCodesAreSingleUseAndReplaceable(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let plain = try RecoveryCodes.generate(count: 4)
            let hashes = try plain.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: keys.recoveryPepper) }
            try await enroll(store, "alice", codes: hashes)
            #expect(try await store.user("alice")?.recoveryCodesLeft == 4)

            let stored = try await store.recoveryCodes(user: "alice")
            #expect(stored.map(\.index) == [0, 1, 2, 3])
            #expect(stored.map(\.hash) == hashes)
            let index = try #require(RecoveryCodes.match(plain[2], against: stored, pepper: keys.recoveryPepper))
            #expect(index == 2)

            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 10, policy: policy)])
            // After the failure's delay (base delay of `policy`) has run out.
            let later = 10 + policy.baseDelayMillis
            #expect(try await store.commit([.accept(user: "alice", use: .recoveryCode(index: 2), atMillis: later, policy: policy)]) == [.applied])
            #expect(try await store.commit([.accept(user: "alice", use: .recoveryCode(index: 2), atMillis: later + 1, policy: policy)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "alice", use: .recoveryCode(index: 9), atMillis: later + 1, policy: policy)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "bob", use: .recoveryCode(index: 0), atMillis: later + 1, policy: policy)]) == [.conflict])
            let alice = try #require(try await store.user("alice"))
            #expect(alice.recoveryCodesLeft == 3)
            #expect(alice.throttle == ThrottleState())
            let left = try await store.recoveryCodes(user: "alice")
            #expect(left.map(\.index) == [0, 1, 3])
            #expect(RecoveryCodes.match(plain[2], against: left, pepper: keys.recoveryPepper) == nil)

            // Two uses of one code at once: one wins.
            async let a = store.commit([.accept(user: "alice", use: .recoveryCode(index: 0), atMillis: later + 10, policy: policy)])
            async let b = store.commit([.accept(user: "alice", use: .recoveryCode(index: 0), atMillis: later + 10, policy: policy)])
            let both = try await a + b
            #expect(both.filter { $0 == .applied }.count == 1 && both.filter { $0 == .conflict }.count == 1, "\(both)")

            // A new set replaces the old one entirely.
            let newPlain = try RecoveryCodes.generate(count: 2)
            let newHashes = try newPlain.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: keys.recoveryPepper) }
            try await store.replaceRecoveryCodes(user: "alice", codes: newHashes)
            let replaced = try await store.recoveryCodes(user: "alice")
            #expect(replaced.map(\.hash) == newHashes)
            #expect(try await store.user("alice")?.recoveryCodesLeft == 2)
            for old in plain { #expect(RecoveryCodes.match(old, against: replaced, pepper: keys.recoveryPepper) == nil) }
            #expect(RecoveryCodes.match(newPlain[1], against: replaced, pepper: keys.recoveryPepper) == 1)

            await #expect(throws: StoreError.notEnrolled("bob")) { try await store.replaceRecoveryCodes(user: "bob", codes: newHashes) }
            #expect(try await store.recoveryCodes(user: "bob").isEmpty)
            try await store.close()
        }
    }
}
