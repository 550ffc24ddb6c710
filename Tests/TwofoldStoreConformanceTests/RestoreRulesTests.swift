import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// The restore rules (`secureRestoredStore`): the same on every backend, since `twofoldd restore
/// --postgresql` relies on the PostgreSQL store applying what a SQLite restore applies.
@Suite struct RestoreRulesTests {
    static let now: Int64 = 1_800_000_000_000

    @Test(arguments: Backend.all) func replayStateMovesPastEveryCodeAndRecoveryCodesAreCountedOrVoided(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let code = try RecoveryCodes.makeHash(canonical: "0000000000", pepper: keys.recoveryPepper)
            let step = Self.now / 30_000
            let users: [(String, OTPParameters, VerifyState, [RecoveryCodeHash])] = [
                ("alice", OTPParameters(), VerifyState(lastStep: 5), [code]),
                ("bob", OTPParameters(method: .hotp), VerifyState(counter: 3), []),
                ("carol", OTPParameters(), VerifyState(lastStep: step + 2), []),
            ]
            for (user, parameters, verify, codes) in users {
                try await store.importEnrollment(EnrollmentImportRecord(user: user, factor: FactorName.first, secret: try SecretBytes(randomCount: 20),
                                                                        parameters: parameters, verify: verify, recoveryCodes: codes, atMillis: 1))
            }
            let rules = RestoreRules(nowMillis: Self.now, hotpLookAhead: 10, invalidateRecoveryCodes: false)
            let result = try await store.secureRestoredStore(rules)
            #expect(result.users == 3 && result.usersWithFactors == 3 && result.factors == 3)
            #expect(result.watermarksRaised == 1 && result.countersAdvanced == 1, "carol's later watermark is never lowered")
            #expect(result.recoverySets == 1 && result.recoverySetsInvalidated == 0)
            #expect(try await store.user("alice")?.factors.first?.verify.lastStep == step)
            #expect(try await store.user("bob")?.factors.first?.verify.counter == 14)
            #expect(try await store.user("carol")?.factors.first?.verify.lastStep == step + 2)
            #expect(try await store.user("alice")?.recoveryCodesLeft == 1)
            #expect(try await store.commit([accept("alice", step: step)]) == [.conflict], "the current step is used up")

            var rotate = rules
            rotate.invalidateRecoveryCodes = true
            let second = try await store.secureRestoredStore(rotate)
            #expect(second.watermarksRaised == 0 && second.recoverySetsInvalidated == 1)
            #expect(try await store.user("alice")?.recoveryCodesLeft == 0)
            try await store.close()
        }
    }
}
