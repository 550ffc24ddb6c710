/// Whether an attempt may be checked now.
public enum Admission: Sendable, Equatable {
    /// Check the attempt.
    case allowed
    /// A back-off delay is pending; try again after this many milliseconds.
    case tooSoon(retryAfterMillis: Int64)
    /// The user is locked out until this time (ms since epoch).
    case locked(untilMillis: Int64)
}

/// Pure decisions on failed-attempt throttling: exponential back-off, then a timed lock.
public enum Throttle {
    /// Decides whether an attempt at `nowMillis` may be checked.
    public static func admit(_ state: ThrottleState, nowMillis: Int64, policy: ThrottlePolicy) -> Admission {
        if let until = state.lockedUntilMillis, until > nowMillis {
            return .locked(untilMillis: until)
        }
        if let notBefore = state.notBeforeMillis, notBefore > nowMillis {
            return .tooSoon(retryAfterMillis: notBefore - nowMillis)
        }
        return .allowed
    }

    /// The state after a failed attempt at `nowMillis`: counts it, then locks at `maxFailures`
    /// or sets the next back-off delay. An expired lock has cleared, so counting restarts from zero.
    public static func afterFailure(_ state: ThrottleState, nowMillis: Int64, policy: ThrottlePolicy) -> ThrottleState {
        var next = state
        if let until = state.lockedUntilMillis, until <= nowMillis {
            next = ThrottleState()
        }
        next.failures = next.failures < Int.max ? max(next.failures, 0) + 1 : Int.max
        if next.failures >= policy.maxFailures {
            next.lockedUntilMillis = saturatingAdd(nowMillis, max(policy.lockDurationMillis, 0))
            next.notBeforeMillis = nil
        } else {
            next.notBeforeMillis = saturatingAdd(nowMillis, delayMillis(afterFailures: next.failures, policy: policy))
        }
        return next
    }

    /// The back-off after `n` consecutive failures: 0 for n ≤ 0, else min(base · 2^(n−1), maxDelay), without overflow.
    public static func delayMillis(afterFailures n: Int, policy: ThrottlePolicy) -> Int64 {
        guard n > 0, policy.baseDelayMillis > 0, policy.maxDelayMillis > 0 else { return 0 }
        let cap = policy.maxDelayMillis
        let shift = n - 1
        guard shift < 62 else { return cap }
        let (product, overflow) = policy.baseDelayMillis.multipliedReportingOverflow(by: Int64(1) << Int64(shift))
        return overflow ? cap : min(product, cap)
    }

    /// The state after a successful attempt: failures, delay and lock all cleared.
    public static func afterSuccess(_ state: ThrottleState) -> ThrottleState {
        ThrottleState()
    }

    private static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }
}
