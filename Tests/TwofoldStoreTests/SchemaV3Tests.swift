import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// v2 → v3 on a database the released v2 code wrote (Fixtures/v2/README.md says what it holds).
@Suite struct SchemaV3Tests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/v2").path
    static let rfcSecret = Array("12345678901234567890".utf8)

    /// The fixture copied into `dir`, opened (and so migrated) with its key.
    func openMigrated(_ dir: String) throws -> SQLiteStore {
        for name in ["twofold.db", "key"] {
            try FileManager.default.copyItem(atPath: Self.fixture + "/" + name, toPath: dir + "/" + name)
            // git keeps no file modes but the executable bit: the key must be private again.
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/" + name)
        }
        return try openStore(dir, keys: try makeKeys(in: dir))
    }

    @Test func everyEnrollmentStepCounterThrottleCodeAndAuditRecordSurvives() async throws {
        try await withTempDir { dir in
            let store = try openMigrated(dir)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v3'") == 1)

            let alice = try #require(try await store.user("alice"))
            let app = try #require(alice.factor(FactorName.first))
            #expect(alice.factors.count == 1)
            #expect(app.secret?.copyBytes() == Self.rfcSecret)
            #expect(app.parameters == OTPParameters())
            #expect(app.verify == VerifyState(lastStep: 1_001, drift: 1, lastOffset: 1))
            #expect(app.addedAtMillis == 10_000 && app.lastUsedMillis == 25_000)
            #expect(alice.throttle == ThrottleState(failures: 2, notBeforeMillis: 30_001))
            #expect(alice.requirement == .required && alice.lastSuccessMillis == 25_000)
            #expect(alice.recoveryCodesLeft == 2)
            let pepper = SecretBytes(Array("v2-fixture-pepper-0123456789abcdef".utf8))
            let codes = try await store.recoveryCodes(user: "alice")
            #expect(RecoveryCodes.match("gggg-hhhh-jj", against: codes, pepper: pepper) == 2)
            #expect(RecoveryCodes.match("dddd-eeee-ff", against: codes, pepper: pepper) == nil)

            let bob = try #require(try await store.user("bob"))
            #expect(bob.factors.map(\.name) == [FactorName.first])
            #expect(bob.factors.first?.parameters == OTPParameters(method: .hotp, algorithm: .sha256, digits: 8))
            #expect(bob.factors.first?.verify.counter == 7)
            #expect(bob.throttle.failures == 1 && bob.throttle.lockedUntilMillis == 1_000_000_000_040_000)

            let carol = try #require(try await store.user("carol"))
            #expect(carol.status == .active && carol.pendingFactor == FactorName.first)
            let pending = try #require(try await store.pendingEnrollment(user: "carol"))
            #expect(pending.secret.copyBytes() == Array("abcdefghijklmnopqrstuvwxyz012345".utf8))
            #expect(pending.parameters == OTPParameters(algorithm: .sha512, digits: 7, period: 60))
            #expect(try await store.user("dave")?.status == .pending)
            let erin = try #require(try await store.user("erin"))
            #expect(erin.status == nil && erin.requirement == .exempt && erin.firstRequiredMillis == 15_000)

            let audit = try await store.audit(AuditQuery(limit: 100))
            #expect(audit.count == 21 && audit.map(\.id) == (1...21).map { Int64($0) })
            #expect(audit.first?.rhost == "10.0.0.1" && audit.first?.reason == "code at offset 1")
            #expect(try await store.setting("policy") == "{\"fixture\":true}")
            // The old columns are gone; secrets are sealed for (user, factor) now.
            #expect(try store.testingCount("SELECT count(*) FROM pragma_table_info('users') WHERE name IN ('secret', 'last_step', 'status')") == 0)
            try await store.close()
        }
    }

    @Test func loginsWorkAfterMigrationAndAUsedStepStaysUsed() async throws {
        try await withTempDir { dir in
            let store = try openMigrated(dir)
            let use = { (step: Int64) in FactorUse.timeStep(factor: FactorName.first, step: step, offset: 0, verify: VerifyState(lastStep: step)) }
            let noDelay = ThrottlePolicy(baseDelayMillis: 0)
            // Step 1001 was used under v2: still a replay; 1002 logs in and clears the throttle.
            #expect(try await store.commit([.accept(user: "alice", use: use(1_001), atMillis: 100_000, policy: noDelay)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "alice", use: use(1_002), atMillis: 100_000, policy: noDelay)]) == [.applied])
            let alice = try #require(try await store.user("alice"))
            #expect(alice.throttle == ThrottleState() && alice.lastSuccessMillis == 100_000)
            // The migrated secret checks codes: the step of "now" is accepted through the factor.
            let factor = try #require(alice.factors.first?.factor())
            let now: Int64 = 1_700_000_000_000
            let code = OneTimeCode.totp(secret: SecretBytes(Self.rfcSecret), unixTime: now / 1_000, parameters: OTPParameters())
            guard case .accepted(let accepted) = factor.check(code, nowMillis: now, policy: WindowPolicy()) else {
                Issue.record("the migrated secret must accept its code")
                return
            }
            #expect(try await store.commit([.accept(user: "alice", use: accepted, atMillis: now, policy: noDelay)]) == [.applied])
            #expect(try await store.commit([.accept(user: "alice", use: accepted, atMillis: now, policy: noDelay)]) == [.conflict])
            // bob's HOTP counter carries on from 7; his lock holds.
            let counter = FactorUse.counter(factor: FactorName.first, counter: 6, offset: 0)
            #expect(try await store.commit([.consume(user: "bob", use: counter)]) == [.conflict])
            guard case .throttled? = try await store.commit([.accept(user: "bob", use: .counter(factor: FactorName.first, counter: 7, offset: 0), atMillis: 100_000)]).first else {
                Issue.record("bob is still locked")
                return
            }
            try await store.close()
            // Opening again migrates nothing more.
            let again = try openStore(dir, keys: try makeKeys(in: dir))
            #expect(try again.testingCount("SELECT count(*) FROM grdb_migrations") == Schema.migrationIdentifiers.count)
            try await again.close()
        }
    }
}
