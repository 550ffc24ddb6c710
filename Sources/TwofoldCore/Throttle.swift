/// Whether an attempt may be checked now.
public enum Admission: Sendable, Equatable {
    /// Check the attempt.
    case allowed
    /// A back-off delay is pending; try again after this many milliseconds.
    case tooSoon(retryAfterMillis: Int64)
    /// The user is locked out until this time (ms since epoch).
    case locked(untilMillis: Int64)
}

/// What the store does with an attempt at commit time.
public enum CommitDecision: Sendable, Equatable {
    /// No lock or delay is in force: apply the attempt (it may still be a replay).
    case proceed
    /// A lock or delay is in force: do not apply it; store this throttle state instead.
    case refuse(ThrottleState)
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
    /// A failure while a lock is in force changes nothing: the lock is not extended (so an attacker
    /// cannot keep a user locked past `lockDuration` by hammering) and the count stays.
    public static func afterFailure(_ state: ThrottleState, nowMillis: Int64, policy: ThrottlePolicy) -> ThrottleState {
        var next = state
        if let until = state.lockedUntilMillis {
            if until > nowMillis { return state }
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

    /// Decides, where an attempt is committed (in the same transaction as the replay check, from the
    /// state read there), whether it may take effect. Parallel dialogs each read the throttle state
    /// when they started; only this decision sees the failures their siblings committed meanwhile.
    /// An attempt that may not take effect, right or wrong, counts as a failure (unless a lock is in
    /// force), so a burst reveals nothing about which of its codes was right.
    public static func commitDecision(_ state: ThrottleState, nowMillis: Int64, policy: ThrottlePolicy) -> CommitDecision {
        switch admit(state, nowMillis: nowMillis, policy: policy) {
        case .allowed:
            return .proceed
        case .tooSoon, .locked:
            return .refuse(afterFailure(state, nowMillis: nowMillis, policy: policy))
        }
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
