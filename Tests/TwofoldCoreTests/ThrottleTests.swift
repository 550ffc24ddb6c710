import Testing
import TwofoldCore

@Suite("Throttle")
struct ThrottleTests {
    static let policy = ThrottlePolicy(maxFailures: 10, baseDelayMillis: 1_000, maxDelayMillis: 30_000, lockDurationMillis: 15 * 60_000)

    @Test("delays double from the base and stop at the cap", arguments: [
        ThrottlePolicy(), ThrottlePolicy(baseDelayMillis: 1_000, maxDelayMillis: 5_000),
        ThrottlePolicy(baseDelayMillis: 250, maxDelayMillis: 250), ThrottlePolicy(baseDelayMillis: 3, maxDelayMillis: .max),
    ])
    func doubling(policy: ThrottlePolicy) {
        #expect(Throttle.delayMillis(afterFailures: 0, policy: policy) == 0)
        #expect(Throttle.delayMillis(afterFailures: -5, policy: policy) == 0)
        #expect(Throttle.delayMillis(afterFailures: 1, policy: policy) == policy.baseDelayMillis)
        for n in 1..<200 {
            let previous = Throttle.delayMillis(afterFailures: n, policy: policy)
            let next = Throttle.delayMillis(afterFailures: n + 1, policy: policy)
            let doubled = previous > policy.maxDelayMillis / 2 ? policy.maxDelayMillis : previous * 2
            #expect(next == min(doubled, policy.maxDelayMillis), "n=\(n)")
            #expect(next <= policy.maxDelayMillis)
        }
        #expect(Throttle.delayMillis(afterFailures: .max, policy: policy) == policy.maxDelayMillis)
    }

    @Test("no overflow with huge bases and counts")
    func noOverflow() {
        let policy = ThrottlePolicy(baseDelayMillis: .max / 3, maxDelayMillis: .max)
        #expect(Throttle.delayMillis(afterFailures: 2, policy: policy) == (.max / 3) * 2)
        #expect(Throttle.delayMillis(afterFailures: 3, policy: policy) == .max)
        #expect(Throttle.delayMillis(afterFailures: 64, policy: policy) == .max)
        let lockForever = ThrottlePolicy(maxFailures: 1, lockDurationMillis: .max)
        let locked = Throttle.afterFailure(ThrottleState(), nowMillis: 1_000, policy: lockForever)
        #expect(locked.lockedUntilMillis == .max)
    }

    @Test("a failure imposes the delay; attempts during it are too soon")
    func tooSoonDuringDelay() {
        let clock = ManualClock(millis: 1_700_000_000_000)
        let policy = Self.policy
        let state = Throttle.afterFailure(ThrottleState(), nowMillis: clock.nowMillis(), policy: policy)
        #expect(state.failures == 1)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .tooSoon(retryAfterMillis: policy.baseDelayMillis))
        clock.advance(millis: policy.baseDelayMillis - 1)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .tooSoon(retryAfterMillis: 1))
        clock.advance(millis: 1)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .allowed)
    }

    @Test("failures lock at maxFailures; the lock clears by itself after lockDuration")
    func lockAndAutoClear() {
        let clock = ManualClock(millis: 1_700_000_000_000)
        let policy = Self.policy
        var state = ThrottleState()
        for n in 1..<policy.maxFailures {
            #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .allowed)
            state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: policy)
            #expect(state.failures == n)
            #expect(state.lockedUntilMillis == nil)
            let delay = Throttle.delayMillis(afterFailures: n, policy: policy)
            #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .tooSoon(retryAfterMillis: delay))
            clock.advance(millis: delay)
        }
        state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: policy)
        let until = clock.nowMillis() + policy.lockDurationMillis
        #expect(state.failures == policy.maxFailures)
        #expect(state.notBeforeMillis == nil)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .locked(untilMillis: until))
        clock.set(millis: until - 1)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .locked(untilMillis: until))
        clock.set(millis: until)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) == .allowed)

        // The expired lock has cleared: the next failure counts from zero.
        state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: policy)
        #expect(state.failures == 1)
        #expect(state.lockedUntilMillis == nil)
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy)
                == .tooSoon(retryAfterMillis: Throttle.delayMillis(afterFailures: 1, policy: policy)))
    }

    @Test("success clears failures, delay and lock")
    func successResets() {
        let clock = ManualClock(millis: 5_000)
        var state = ThrottleState()
        for _ in 0..<3 {
            state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: Self.policy)
            clock.advance(millis: Self.policy.maxDelayMillis)
        }
        #expect(state.failures == 3)
        state = Throttle.afterSuccess(state)
        #expect(state == ThrottleState())
        #expect(Throttle.admit(state, nowMillis: clock.nowMillis(), policy: Self.policy) == .allowed)
        state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: Self.policy)
        #expect(state.notBeforeMillis == clock.nowMillis() + Self.policy.baseDelayMillis)
        let locked = ThrottleState(failures: 10, lockedUntilMillis: clock.nowMillis() + 60_000)
        #expect(Throttle.afterSuccess(locked) == ThrottleState())
    }

    @Test("the applied delay is capped")
    func cap() {
        let policy = ThrottlePolicy(maxFailures: 100, baseDelayMillis: 1_000, maxDelayMillis: 5_000)
        let clock = ManualClock(millis: 0)
        var state = ThrottleState()
        var applied: [Int64] = []
        for _ in 0..<8 {
            state = Throttle.afterFailure(state, nowMillis: clock.nowMillis(), policy: policy)
            let retry: Int64
            switch Throttle.admit(state, nowMillis: clock.nowMillis(), policy: policy) {
            case .tooSoon(let ms): retry = ms
            default: Issue.record("expected a delay"); return
            }
            applied.append(retry)
            clock.advance(millis: retry)
        }
        let base = policy.baseDelayMillis
        #expect(applied == [base, 2 * base, 4 * base] + Array(repeating: policy.maxDelayMillis, count: 5))
    }

    @Test("manual clock moves only when told")
    func manualClock() {
        let clock = ManualClock(millis: 42)
        #expect(clock.nowMillis() == 42)
        clock.advance(millis: 1_000)
        #expect(clock.nowMillis() == 1_042)
        clock.advance(millis: -2)
        #expect(clock.nowMillis() == 1_040)
        clock.set(millis: -7)
        #expect(clock.nowMillis() == -7)
    }
}

extension ThrottleTests {
    @Test("at commit: allowed proceeds; a delay or lock refuses, counted as a failure but never extending a lock")
    func commitDecision() {
        let now: Int64 = 1_700_000_000_000
        #expect(Throttle.commitDecision(ThrottleState(), nowMillis: now, policy: Self.policy) == .proceed)
        let delayed = ThrottleState(failures: 1, notBeforeMillis: now + 500)
        #expect(Throttle.commitDecision(delayed, nowMillis: now, policy: Self.policy)
                == .refuse(ThrottleState(failures: 2, notBeforeMillis: now + 2_000)))
        #expect(Throttle.commitDecision(delayed, nowMillis: now + 500, policy: Self.policy) == .proceed)
        let locked = ThrottleState(failures: 10, lockedUntilMillis: now + 60_000)
        #expect(Throttle.commitDecision(locked, nowMillis: now, policy: Self.policy) == .refuse(locked))
        #expect(Throttle.afterFailure(locked, nowMillis: now + 1, policy: Self.policy) == locked)
        #expect(Throttle.commitDecision(locked, nowMillis: now + 60_000, policy: Self.policy) == .proceed)
    }
}
