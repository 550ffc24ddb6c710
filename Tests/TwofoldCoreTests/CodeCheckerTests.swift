import Testing
import TwofoldCore
import TwofoldCrypto

/// A random secret and clock whose codes are pairwise distinct over the steps a test uses,
/// so no expectation depends on a one-in-a-million code collision.
struct TOTPFixture {
    let secret: SecretBytes
    let parameters: OTPParameters
    let nowMillis: Int64

    init(parameters: OTPParameters = OTPParameters(), distinctOver range: ClosedRange<Int> = -12...12) throws {
        var rng = SeededGenerator()
        while true {
            let secret = try OTPSecret.generate()
            let now = Int64.random(in: 1_000_000_000_000...4_000_000_000_000, using: &rng)
            let candidate = TOTPFixture(secret: secret, parameters: parameters, nowMillis: now)
            if Set(range.map { candidate.code(offset: $0) }).count == range.count {
                self = candidate
                return
            }
        }
    }

    private init(secret: SecretBytes, parameters: OTPParameters, nowMillis: Int64) {
        self.secret = secret
        self.parameters = parameters
        self.nowMillis = nowMillis
    }

    var seconds: Int64 { nowMillis / 1_000 }
    var current: Int64 { OneTimeCode.step(unixTime: seconds, period: parameters.period) }

    /// The code `offset` steps from the step containing `nowMillis` (+ `later` steps of clock advance).
    func code(offset: Int, later: Int = 0) -> String {
        OneTimeCode.totp(secret: secret, unixTime: seconds + Int64(offset + later) * Int64(parameters.period), parameters: parameters)
    }

    func check(_ code: String, state: VerifyState = VerifyState(), later: Int = 0, policy: WindowPolicy) -> CheckOutcome {
        CodeChecker.check(code: code, secret: secret, parameters: parameters, state: state,
                          nowMillis: nowMillis + Int64(later * parameters.period) * 1_000, policy: policy)
    }
}

extension CheckOutcome {
    var newState: VerifyState? {
        if case .accepted(_, _, let state) = self { return state }
        return nil
    }
}

@Suite("TOTP window, drift and replay")
struct TOTPCheckerTests {
    @Test("a code is accepted exactly within ±window of the clock", arguments: [0, 1, 2], -3...3)
    func windowEdges(window: Int, offset: Int) throws {
        let fixture = try TOTPFixture()
        let outcome = fixture.check(fixture.code(offset: offset), policy: WindowPolicy(window: window))
        if abs(offset) <= window {
            let step = fixture.current + Int64(offset)
            #expect(outcome == .accepted(step: step, offset: offset,
                                         newState: VerifyState(lastStep: step, drift: 0, lastOffset: offset)))
        } else {
            #expect(outcome == .rejected)
        }
    }

    @Test("all algorithms, digit counts and periods", arguments: HashAlgorithm.allCases, [6, 7, 8])
    func parameterVariants(algorithm: HashAlgorithm, digits: Int) throws {
        for period in [15, 30, 60] {
            let fixture = try TOTPFixture(parameters: OTPParameters(algorithm: algorithm, digits: digits, period: period), distinctOver: -3...3)
            let policy = WindowPolicy(window: 1)
            for offset in -1...1 {
                #expect(fixture.check(fixture.code(offset: offset), policy: policy).newState?.lastStep == fixture.current + Int64(offset))
            }
            #expect(fixture.check(fixture.code(offset: 2), policy: policy) == .rejected)
        }
    }

    @Test("step boundaries are exact to the millisecond")
    func stepBoundaries() throws {
        let fixture = try TOTPFixture()
        let period = Int64(fixture.parameters.period)
        let policy = WindowPolicy(window: 0)
        let stepStart = fixture.current * period * 1_000
        let codeThis = fixture.code(offset: 0)
        let codeNext = fixture.code(offset: 1)
        func check(_ code: String, at millis: Int64) -> CheckOutcome {
            CodeChecker.check(code: code, secret: fixture.secret, parameters: fixture.parameters, state: VerifyState(), nowMillis: millis, policy: policy)
        }
        #expect(check(codeThis, at: stepStart) != .rejected)
        #expect(check(codeThis, at: stepStart + period * 1_000 - 1) != .rejected)
        #expect(check(codeThis, at: stepStart - 1) == .rejected)
        #expect(check(codeNext, at: stepStart + period * 1_000 - 1) == .rejected)
        #expect(check(codeNext, at: stepStart + period * 1_000) != .rejected)
    }

    @Test("negative clock times floor to the earlier step")
    func negativeTime() throws {
        let secret = try OTPSecret.generate()
        let parameters = OTPParameters()
        let code = OneTimeCode.totp(secret: secret, unixTime: -1, parameters: parameters)
        #expect(OneTimeCode.step(unixTime: -1, period: 30) == -1)
        let outcome = CodeChecker.check(code: code, secret: secret, parameters: parameters, state: VerifyState(), nowMillis: -1, policy: WindowPolicy(window: 0))
        #expect(outcome.newState?.lastStep == -1)
    }

    @Test("two codes in a row at +2 (window 2) re-centre the window; then +3 is accepted and −1 is not")
    func learnsDrift() throws {
        let fixture = try TOTPFixture()
        let policy = WindowPolicy(window: 2, maxDrift: 3)

        let first = fixture.check(fixture.code(offset: 2), policy: policy)
        let afterFirst = try #require(first.newState)
        #expect(afterFirst.drift == 0, "one code is not enough evidence")
        #expect(afterFirst.lastOffset == 2)

        let second = fixture.check(fixture.code(offset: 2, later: 1), state: afterFirst, later: 1, policy: policy)
        let afterSecond = try #require(second.newState)
        #expect(afterSecond.drift == 2)
        #expect(afterSecond.lastStep == fixture.current + 3)

        // Without learned drift, +3 and −1 would be decided the other way round.
        #expect(fixture.check(fixture.code(offset: 3, later: 2), state: afterFirst, later: 2, policy: policy) == .rejected)
        let third = fixture.check(fixture.code(offset: 3, later: 2), state: afterSecond, later: 2, policy: policy)
        #expect(third == .accepted(step: fixture.current + 5, offset: 3,
                                   newState: VerifyState(lastStep: fixture.current + 5, drift: 2, lastOffset: 3)))
        // −1 is outside the re-centred window (.rejected, not .replay, although its step is also ≤ lastStep).
        #expect(fixture.check(fixture.code(offset: -1, later: 2), state: afterSecond, later: 2, policy: policy) == .rejected)
        #expect(fixture.check(fixture.code(offset: -1, later: 2), state: VerifyState(drift: 2), later: 2, policy: policy) == .rejected)
        #expect(fixture.check(fixture.code(offset: -1, later: 2), state: VerifyState(), later: 2, policy: policy).newState != nil)
    }

    @Test("learned drift is bounded by maxDrift", arguments: [0, 1, 2])
    func driftBounded(maxDrift: Int) throws {
        let fixture = try TOTPFixture()
        let policy = WindowPolicy(window: 3, maxDrift: maxDrift)
        var state = VerifyState()
        for later in 0..<2 {
            state = try #require(fixture.check(fixture.code(offset: 3, later: later), state: state, later: later, policy: policy).newState)
        }
        #expect(state.drift == maxDrift)
        // The reach is now maxDrift + window; one step further is rejected.
        let reach = maxDrift + 3
        #expect(fixture.check(fixture.code(offset: reach, later: 2), state: state, later: 2, policy: policy).newState != nil)
        #expect(fixture.check(fixture.code(offset: reach + 1, later: 2), state: state, later: 2, policy: policy) == .rejected)
    }

    @Test("a code far outside the window is never accepted, whatever the drift evidence")
    func farOutside() throws {
        let fixture = try TOTPFixture(distinctOver: -4...4)
        let policy = WindowPolicy(window: 1, maxDrift: 3)
        let reachable = Set((-4...4).map { fixture.code(offset: $0) })
        var rng = SeededGenerator()
        for _ in 0..<200 {
            let magnitude = Int.random(in: 5...100_000, using: &rng)
            let offset = Bool.random(using: &rng) ? magnitude : -magnitude
            let code = fixture.code(offset: offset)
            if reachable.contains(code) { continue }   // a genuine collision with a reachable step
            let evidence = VerifyState(lastStep: nil, drift: offset, lastOffset: offset)
            #expect(fixture.check(code, state: evidence, policy: policy) == .rejected, "offset \(offset), seed \(rng.seed)")
        }
    }

    @Test("the same code twice is a replay")
    func sameCodeTwice() throws {
        let fixture = try TOTPFixture()
        let policy = WindowPolicy(window: 1)
        let code = fixture.code(offset: 0)
        let state = try #require(fixture.check(code, policy: policy).newState)
        #expect(fixture.check(code, state: state, policy: policy) == .replay)
        // Still a replay when the clock has moved on but the step is inside the window.
        let later = fixture.check(code, state: state, later: 1, policy: policy)
        #expect(later == .replay)
    }

    @Test("an older code after a newer one is a replay")
    func olderAfterNewer() throws {
        let fixture = try TOTPFixture()
        let policy = WindowPolicy(window: 1)
        let state = try #require(fixture.check(fixture.code(offset: 1), policy: policy).newState)
        #expect(fixture.check(fixture.code(offset: 0), state: state, policy: policy) == .replay)
        #expect(fixture.check(fixture.code(offset: -1), state: state, policy: policy) == .replay)
        #expect(fixture.check(fixture.code(offset: 2), state: state, policy: policy) == .rejected)
    }

    /// With one digit, codes of nearby steps collide often, which exercises the selection among several matches.
    @Test("with several matches the latest fresh step wins")
    func collisions() throws {
        let secret = try OTPSecret.generate()
        let parameters = OTPParameters(digits: 1, period: 30)
        let policy = WindowPolicy(window: 1)
        var rng = SeededGenerator()
        var exercised = 0
        for _ in 0..<2_000 where exercised < 20 {
            let seconds = Int64.random(in: 1_000_000_000...4_000_000_000, using: &rng)
            let current = OneTimeCode.step(unixTime: seconds, period: 30)
            let codes = (-1...1).map { OneTimeCode.totp(secret: secret, unixTime: seconds + Int64($0) * 30, parameters: parameters) }
            guard codes[0] == codes[2], codes[1] != codes[0] else { continue }
            exercised += 1
            let now = seconds * 1_000
            let fresh = CodeChecker.check(code: codes[0], secret: secret, parameters: parameters, state: VerifyState(), nowMillis: now, policy: policy)
            #expect(fresh.newState?.lastStep == current + 1, "seed \(rng.seed)")
            let afterMiddle = VerifyState(lastStep: current, lastOffset: 0)
            let partly = CodeChecker.check(code: codes[0], secret: secret, parameters: parameters, state: afterMiddle, nowMillis: now, policy: policy)
            #expect(partly.newState?.lastStep == current + 1, "seed \(rng.seed)")
            let afterLatest = VerifyState(lastStep: current + 1, lastOffset: 1)
            let replay = CodeChecker.check(code: codes[0], secret: secret, parameters: parameters, state: afterLatest, nowMillis: now, policy: policy)
            #expect(replay == .replay, "seed \(rng.seed)")
        }
        #expect(exercised == 20, "too few collisions found; seed \(rng.seed)")
    }

    @Test("malformed input is refused before any check", arguments: [
        "", " ", "12345", "1234567", "12a456", "12-456", "123456\u{0}", "١٢٣٤٥٦", "１２３４５６", "+12345", "-12345", "12345.", "12\n3456",
    ])
    func malformed(input: String) throws {
        let fixture = try TOTPFixture()
        #expect(fixture.check(input, policy: WindowPolicy()) == .malformed)
    }

    @Test("typed spacing around and inside the code is accepted")
    func spacing() throws {
        let fixture = try TOTPFixture()
        let code = fixture.code(offset: 0)
        let spaced = "  " + code.prefix(3) + " " + code.dropFirst(3) + "\n"
        #expect(fixture.check(spaced, policy: WindowPolicy()).newState != nil)
        #expect(CodeInput.normalize(spaced, digits: 6) == Array(code.utf8))
        #expect(CodeInput.normalize(code, digits: 8) == nil)
    }
}

@Suite("HOTP look-ahead, counter and replay")
struct HOTPCheckerTests {
    static let parameters = OTPParameters(method: .hotp)

    static func fixture(distinctAround counter: UInt64) throws -> SecretBytes {
        while true {
            let secret = try OTPSecret.generate()
            let low = counter >= 12 ? counter - 12 : 0
            let codes = (low...(counter + 12)).map { OneTimeCode.hotp(secret: secret, counter: $0, digits: 6, algorithm: .sha1) }
            if Set(codes).count == codes.count { return secret }
        }
    }

    static func check(_ secret: SecretBytes, code counter: UInt64, stateCounter: UInt64, lookAhead: Int = 10) -> CheckOutcome {
        let code = OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: .sha1)
        return CodeChecker.check(code: code, secret: secret, parameters: parameters, state: VerifyState(counter: stateCounter),
                                 nowMillis: 0, policy: WindowPolicy(hotpLookAhead: lookAhead))
    }

    @Test("codes up to the look-ahead are accepted and move the counter past the match", arguments: 0...12)
    func lookAhead(ahead: Int) throws {
        let base: UInt64 = 100
        let secret = try Self.fixture(distinctAround: base)
        let outcome = Self.check(secret, code: base + UInt64(ahead), stateCounter: base)
        if ahead <= 10 {
            #expect(outcome == .accepted(step: Int64(base) + Int64(ahead), offset: ahead,
                                         newState: VerifyState(counter: base + UInt64(ahead) + 1)))
        } else {
            #expect(outcome == .rejected)
        }
    }

    @Test("a smaller look-ahead is honoured")
    func smallerLookAhead() throws {
        let secret = try Self.fixture(distinctAround: 50)
        #expect(Self.check(secret, code: 53, stateCounter: 50, lookAhead: 3).newState?.counter == 54)
        #expect(Self.check(secret, code: 54, stateCounter: 50, lookAhead: 3) == .rejected)
        #expect(Self.check(secret, code: 50, stateCounter: 50, lookAhead: 0).newState?.counter == 51)
        #expect(Self.check(secret, code: 51, stateCounter: 50, lookAhead: 0) == .rejected)
    }

    @Test("codes just below the counter are replays; older ones are rejected", arguments: 1...12)
    func replayBelow(behind: Int) throws {
        let base: UInt64 = 100
        let secret = try Self.fixture(distinctAround: base)
        let outcome = Self.check(secret, code: base - UInt64(behind), stateCounter: base)
        #expect(outcome == (behind <= 10 ? .replay : .rejected))
    }

    @Test("near zero the replay range stops at counter 0")
    func replayNearZero() throws {
        let secret = try Self.fixture(distinctAround: 3)
        for counter: UInt64 in 0..<3 {
            #expect(Self.check(secret, code: counter, stateCounter: 3) == .replay)
        }
        #expect(Self.check(secret, code: 3, stateCounter: 3).newState?.counter == 4)
    }

    @Test("feeding the new state back makes the same code a replay and the next one acceptable")
    func sequence() throws {
        let secret = try Self.fixture(distinctAround: 20)
        var state = VerifyState(counter: 10)
        for counter: UInt64 in [10, 11, 15, 16, 26] {
            let code = OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: .sha1)
            let outcome = CodeChecker.check(code: code, secret: secret, parameters: Self.parameters, state: state, nowMillis: 0, policy: WindowPolicy())
            let next = try #require(outcome.newState, "counter \(counter)")
            #expect(next.counter == counter + 1)
            #expect(CodeChecker.check(code: code, secret: secret, parameters: Self.parameters, state: next, nowMillis: 0, policy: WindowPolicy()) == .replay)
            state = next
        }
    }

    /// With one digit, codes collide often: the lowest matching counter at or above the counter wins,
    /// and a match ahead wins over a match below (which alone would be a replay).
    @Test("with several matches the lowest fresh counter wins")
    func collisions() throws {
        let secret = try OTPSecret.generate()
        let parameters = OTPParameters(method: .hotp, digits: 1)
        let policy = WindowPolicy(hotpLookAhead: 10)
        var rng = SeededGenerator()
        for _ in 0..<200 {
            let counter = UInt64.random(in: 10...1_000_000, using: &rng)
            let codes = (counter - 10...counter + 10).map { OneTimeCode.hotp(secret: secret, counter: $0, digits: 1, algorithm: .sha1) }
            for digit in "0123456789" {
                let code = String(digit)
                let outcome = CodeChecker.check(code: code, secret: secret, parameters: parameters, state: VerifyState(counter: counter), nowMillis: 0, policy: policy)
                if let first = codes[10...].firstIndex(of: code) {
                    let matched = counter - 10 + UInt64(first)
                    #expect(outcome == .accepted(step: Int64(matched), offset: first - 10, newState: VerifyState(counter: matched + 1)), "seed \(rng.seed)")
                } else {
                    #expect(outcome == (codes[..<10].contains(code) ? .replay : .rejected), "seed \(rng.seed)")
                }
            }
        }
    }

    @Test("malformed HOTP input is refused", arguments: ["", "12345", "abcdef", "1234567"])
    func malformed(input: String) throws {
        let secret = try OTPSecret.generate()
        #expect(CodeChecker.check(code: input, secret: secret, parameters: Self.parameters, state: VerifyState(), nowMillis: 0, policy: WindowPolicy()) == .malformed)
    }
}
