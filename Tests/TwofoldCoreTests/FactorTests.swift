import Testing
import TwofoldCore
import TwofoldCrypto

/// The three factor kinds behind the `Factor` protocol, and checking a set of them.
@Suite struct FactorTests {
    static let now: Int64 = 1_700_000_000_000
    static let policy = WindowPolicy()

    static func totp(_ name: String, secret: String = "12345678901234567890", state: VerifyState = VerifyState()) -> FactorRecord {
        FactorRecord(name: name, parameters: OTPParameters(), secret: ascii(secret), verify: state)
    }

    static func code(_ secret: String = "12345678901234567890", offset: Int64 = 0, parameters: OTPParameters = OTPParameters()) -> String {
        OneTimeCode.totp(secret: ascii(secret), unixTime: now / 1_000 + offset * 30, parameters: parameters)
    }

    @Test func totpAcceptsItsCodeAndNamesTheStepOfThatFactor() throws {
        let factor = try #require(Self.totp("phone").factor())
        #expect(factor.kind == .totp)
        #expect(factor.claims("123 456"))
        #expect(!factor.claims("12345"))
        let step = OneTimeCode.step(unixTime: Self.now / 1_000, period: 30)
        guard case .accepted(.timeStep(let name, let accepted, let offset, let verify)) = factor.check(Self.code(), nowMillis: Self.now, policy: Self.policy) else {
            Issue.record("expected an accepted time step")
            return
        }
        #expect(name == "phone" && accepted == step && offset == 0 && verify.lastStep == step)
        #expect(factor.check("000000", nowMillis: Self.now, policy: Self.policy) == (Self.code() == "000000" ? .accepted(.timeStep(factor: "phone", step: step, offset: 0, verify: verify)) : .rejected))
        #expect(factor.check("abc", nowMillis: Self.now, policy: Self.policy) == .malformed)
        let used = try #require(Self.totp("phone", state: VerifyState(lastStep: step)).factor())
        #expect(used.check(Self.code(), nowMillis: Self.now, policy: Self.policy) == .replay)
    }

    @Test func hotpMovesPastTheMatchedCounter() throws {
        let parameters = OTPParameters(method: .hotp, digits: 6)
        let secret = ascii("12345678901234567890")
        let record = FactorRecord(name: "token", parameters: parameters, secret: secret, verify: VerifyState(counter: 3))
        let factor = try #require(record.factor())
        #expect(factor.kind == .hotp)
        // RFC 4226 appendix D: counter 5 is 254676.
        #expect(factor.check("254676", nowMillis: 0, policy: Self.policy) == .accepted(.counter(factor: "token", counter: 5, offset: 2)))
        // Counter 2 is below the stored counter: a replay.
        #expect(factor.check("359152", nowMillis: 0, policy: Self.policy) == .replay)
    }

    @Test func recoveryCodesMatchOnceAndClaimTheirForm() throws {
        let pepper = ascii("pepper-pepper-pepper-pepper-1234")
        let codes = try RecoveryCodes.generate(count: 3)
        let hashes = try codes.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: pepper) }
        let factor = RecoveryCodeFactor(unused: [(0, hashes[0]), (2, hashes[2])], pepper: pepper)
        #expect(factor.kind == .recovery && factor.name == "recovery")
        #expect(factor.claims(codes[0].uppercased()))
        #expect(!factor.claims("123456"))
        #expect(factor.check(codes[2], nowMillis: 0, policy: Self.policy) == .accepted(.recoveryCode(index: 2)))
        #expect(factor.check(codes[1], nowMillis: 0, policy: Self.policy) == .rejected)
        #expect(factor.check("123456", nowMillis: 0, policy: Self.policy) == .malformed)
    }

    @Test func aSetAcceptsACodeOfAnyFactorAndSaysNotWhichFailed() throws {
        let phone = try #require(Self.totp("phone").factor())
        let tablet = try #require(Self.totp("tablet", secret: "abcdefghijklmnopqrst").factor())
        let both = [phone, tablet]
        guard case .accepted(let use) = FactorSet.check(Self.code("abcdefghijklmnopqrst"), factors: both, nowMillis: Self.now, policy: Self.policy) else {
            Issue.record("the tablet's code must be accepted")
            return
        }
        #expect(use.factorName == "tablet")
        guard case .accepted(let first) = FactorSet.check(Self.code(), factors: both, nowMillis: Self.now, policy: Self.policy) else {
            Issue.record("the phone's code must be accepted")
            return
        }
        #expect(first.factorName == "phone")
        // A wrong code: one verdict for the set, the same whichever order the factors come in.
        let near = Set((-2...2).flatMap { (o: Int64) in [Self.code(offset: o), Self.code("abcdefghijklmnopqrst", offset: o)] })
        let wrong = ["000000", "111111", "222222", "333333", "444444", "555555"].first { !near.contains($0) }!
        #expect(FactorSet.check(wrong, factors: both, nowMillis: Self.now, policy: Self.policy) == .rejected)
        #expect(FactorSet.check(wrong, factors: both.reversed(), nowMillis: Self.now, policy: Self.policy) == .rejected)
        #expect(FactorSet.check("12", factors: both, nowMillis: Self.now, policy: Self.policy) == .malformed)
        #expect(FactorSet.check(wrong, factors: [], nowMillis: Self.now, policy: Self.policy) == .malformed)
    }

    @Test func replayIsPerFactor() throws {
        let step = OneTimeCode.step(unixTime: Self.now / 1_000, period: 30)
        // Both factors share a secret (the same app set up twice): the step used on one is fresh on the other.
        let used = try #require(Self.totp("phone", state: VerifyState(lastStep: step)).factor())
        let fresh = try #require(Self.totp("tablet").factor())
        #expect(FactorSet.check(Self.code(), factors: [used], nowMillis: Self.now, policy: Self.policy) == .replay)
        guard case .accepted(let use) = FactorSet.check(Self.code(), factors: [used, fresh], nowMillis: Self.now, policy: Self.policy) else {
            Issue.record("a step used on one factor must stay fresh on the other")
            return
        }
        #expect(use.factorName == "tablet")
    }

    @Test func namesAreCheckedAndDefaultsCount() {
        #expect(FactorName.isValid("app") && FactorName.isValid("yubikey-5.nfc") && FactorName.isValid("2nd_phone"))
        #expect(!FactorName.isValid("") && !FactorName.isValid("-x") && !FactorName.isValid("a/b") && !FactorName.isValid("App"))
        #expect(!FactorName.isValid("recovery") && !FactorName.isValid(String(repeating: "a", count: 33)))
        #expect(FactorName.next("app", taken: []) == "app")
        #expect(FactorName.next("app", taken: ["app", "app-2"]) == "app-3")
    }
}
