/// The replay state a factor gets when an old copy of the store is restored: the copy does not
/// know which codes were used after it was taken, so every factor moves past all of them.
public enum RestoreReplay {
    /// A TOTP factor's watermark: the step of `nowMillis`, never lower than the stored one. Every
    /// code used before the restore was of a step ≤ now (the same step included), so none works again;
    /// the next step's code does.
    public static func totpWatermark(stored: Int64?, period: Int, nowMillis: Int64) -> Int64 {
        guard period > 0 else { return stored ?? .min }
        let seconds = nowMillis >= 0 ? nowMillis / 1_000 : -((-nowMillis + 999) / 1_000)
        let current = OneTimeCode.step(unixTime: seconds, period: period)
        return max(stored ?? .min, current)
    }

    /// An HOTP factor's next counter: moved past the whole look-ahead window (the stored counter and
    /// `lookAhead` more, saturating), the farthest one accepted code after the copy could reach.
    public static func hotpCounter(stored: UInt64, lookAhead: Int) -> UInt64 {
        let (sum, overflow) = stored.addingReportingOverflow(UInt64(max(lookAhead, 0)) + 1)
        return overflow ? .max : sum
    }

    /// The verify state after a restore: `state` with the rule of its method applied.
    public static func restored(_ state: VerifyState, method: OTPMethod, period: Int, nowMillis: Int64, lookAhead: Int) -> VerifyState {
        var next = state
        switch method {
        case .totp: next.lastStep = totpWatermark(stored: state.lastStep, period: period, nowMillis: nowMillis)
        case .hotp: next.counter = hotpCounter(stored: state.counter, lookAhead: lookAhead)
        }
        return next
    }
}
