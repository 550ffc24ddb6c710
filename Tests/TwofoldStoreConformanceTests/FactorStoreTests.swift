import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// The factor mutations, written against `TwofoldStore` so that every backend runs them.
@Suite struct FactorStoreTests {
    static func totp(_ factor: String, _ step: Int64) -> FactorUse {
        .timeStep(factor: factor, step: step, offset: 0, verify: VerifyState(lastStep: step))
    }

    static func add(_ store: any TwofoldStore, _ user: String, factor: String, at millis: Int64 = 1_000,
                    parameters: OTPParameters = OTPParameters(), codes: [RecoveryCodeHash] = []) async throws {
        try await store.importEnrollment(EnrollmentImportRecord(user: user, factor: factor, secret: try SecretBytes(randomCount: 20),
                                                                parameters: parameters, verify: VerifyState(), recoveryCodes: codes, atMillis: millis))
    }

    static func withStore(_ backend: Backend, _ body: (any TwofoldStore) async throws -> Void) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await body(store)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func severalFactorsPerUserWithTheirOwnReplayState(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            try await Self.add(store, "alice", factor: "phone", at: 1)
            try await Self.add(store, "alice", factor: "token", at: 2, parameters: OTPParameters(method: .hotp))
            try await Self.add(store, "alice", factor: "tablet", at: 3)
            let alice = try #require(try await store.user("alice"))
            #expect(alice.factors.map(\.name) == ["phone", "tablet", "token"])
            #expect(alice.factors.map(\.kind) == [.totp, .totp, .hotp])
            #expect(alice.enrolledAtMillis == 1)
            // A step used on the phone is still fresh on the tablet.
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("phone", 50), atMillis: 10)]) == [.applied])
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("phone", 50), atMillis: 11)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("tablet", 50), atMillis: 12)]) == [.applied])
            #expect(try await store.commit([.accept(user: "alice", use: .counter(factor: "token", counter: 4, offset: 4), atMillis: 13)]) == [.applied])
            // A use names its kind: a time step never applies to a counter factor, nor to a missing one.
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("token", 60), atMillis: 14)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("ghost", 60), atMillis: 14)]) == [.conflict])
            let after = try #require(try await store.user("alice"))
            #expect(after.factor("phone")?.verify.lastStep == 50 && after.factor("phone")?.lastUsedMillis == 10)
            #expect(after.factor("tablet")?.lastUsedMillis == 12)
            #expect(after.factor("token")?.verify.counter == 5)
            #expect(after.lastSuccessMillis == 13)
        }
    }

    @Test(arguments: Backend.all) func throttleIsPerUserWhateverTheFactor(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            try await Self.add(store, "alice", factor: "phone")
            try await Self.add(store, "alice", factor: "tablet")
            let policy = ThrottlePolicy(maxFailures: 3, baseDelayMillis: 0)
            // Failures count on the user: three failures lock both factors, not one of them.
            for i in 0..<3 { _ = try await store.commit([.recordFailure(user: "alice", atMillis: 100 + Int64(i), policy: policy)]) }
            let locked = try #require(try await store.user("alice")?.throttle)
            #expect(locked.failures == 3 && locked.lockedUntilMillis != nil)
            for factor in ["phone", "tablet"] {
                guard case .throttled? = try await store.commit([.accept(user: "alice", use: Self.totp(factor, 7), atMillis: 200, policy: policy)]).first else {
                    Issue.record("factor \(factor) must be locked with its user")
                    continue
                }
            }
            // A success on any factor clears the user's throttle.
            try await store.unlock(user: "alice")
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 300, policy: policy)])
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("tablet", 9), atMillis: 400, policy: policy)]) == [.applied])
            #expect(try await store.user("alice")?.throttle == ThrottleState())
        }
    }

    @Test(arguments: Backend.all) func enrollingAddsOrReplacesByNameAndRemovingLeavesTheOthers(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let pepper = SecretBytes(Array("pepper-pepper-pepper-pepper-1234".utf8))
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: pepper)
            try await Self.add(store, "alice", factor: "app", codes: [code])
            // A second enrollment adds a factor; activating keeps the recovery codes when told to.
            let tablet = try SecretBytes(randomCount: 20)
            try await store.beginEnrollment(user: "alice", factor: "tablet", secret: tablet, parameters: OTPParameters(), atMillis: 5)
            #expect(try await store.user("alice")?.pendingFactor == "tablet")
            try await store.activateEnrollment(user: "alice", recoveryCodes: nil, verify: VerifyState(lastStep: 3), atMillis: 6)
            var alice = try #require(try await store.user("alice"))
            #expect(alice.factors.map(\.name) == ["app", "tablet"] && alice.pendingFactor == nil && alice.recoveryCodesLeft == 1)
            #expect(alice.factor("tablet")?.secret?.constantTimeEquals(tablet) == true)
            // Re-enrolling a name replaces that factor only (its replay state starts over).
            _ = try await store.commit([.accept(user: "alice", use: Self.totp("app", 40), atMillis: 7)])
            let newApp = try SecretBytes(randomCount: 20)
            try await store.beginEnrollment(user: "alice", factor: "app", secret: newApp, parameters: OTPParameters(), atMillis: 8)
            try await store.activateEnrollment(user: "alice", recoveryCodes: nil, verify: VerifyState(lastStep: 10), atMillis: 9)
            alice = try #require(try await store.user("alice"))
            #expect(alice.factors.count == 2 && alice.factor("app")?.secret?.constantTimeEquals(newApp) == true)
            #expect(alice.factor("app")?.verify.lastStep == 10 && alice.factor("app")?.lastUsedMillis == nil && alice.factor("app")?.addedAtMillis == 9)
            // Removing one leaves the other working.
            #expect(try await store.removeFactor(user: "alice", name: "app"))
            #expect(try await !store.removeFactor(user: "alice", name: "app"))
            #expect(try await store.commit([.accept(user: "alice", use: Self.totp("tablet", 11), atMillis: 12)]) == [.applied])
            #expect(try await store.user("alice")?.recoveryCodesLeft == 1)
            // Removing the last takes the recovery codes with it.
            #expect(try await store.removeFactor(user: "alice", name: "tablet"))
            alice = try #require(try await store.user("alice"))
            #expect(alice.status == nil && alice.recoveryCodesLeft == 0)
        }
    }

    @Test(arguments: Backend.all) func revokeRemovesEveryFactorAndImportKeepsCodesUnlessItBringsSome(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store in
            let pepper = SecretBytes(Array("pepper-pepper-pepper-pepper-1234".utf8))
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: pepper)
            try await Self.add(store, "alice", factor: "app", codes: [code])
            try await Self.add(store, "alice", factor: "imported")
            #expect(try await store.user("alice")?.recoveryCodesLeft == 1)
            try await store.beginEnrollment(user: "alice", factor: "app-2", secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 3)
            #expect(try await store.revoke(user: "alice"))
            let alice = try #require(try await store.user("alice"))
            #expect(alice.factors.isEmpty && alice.pendingFactor == nil && alice.recoveryCodesLeft == 0)
            #expect(try await !store.revoke(user: "alice"))
        }
    }
}
