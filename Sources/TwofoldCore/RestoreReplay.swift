/// The replay state a factor gets when an old copy of the store is restored: the copy does not
/// know which codes were used after it was taken, so every factor moves past all of them. Uses an
/// audit export shows after the copy (`Use`) move it further: to the exact step or counter they
/// reached, where the window alone would fall short (a TOTP code of a future step, HOTP codes
/// more than one look-ahead window past the copy's counter).
public enum RestoreReplay {
    /// A code accepted after the copy, as its audit record says: when, and at which offset from the
    /// clock's step (TOTP) or from the stored counter (HOTP).
    public struct Use: Sendable, Equatable, Hashable, Codable {
        public var timeMillis: Int64
        public var offset: Int

        public init(timeMillis: Int64, offset: Int) {
            self.timeMillis = timeMillis
            self.offset = offset
        }
    }

    /// A TOTP factor's watermark: the step of `nowMillis`, never lower than the stored one nor than
    /// any step `uses` reached. Every code used before the restore was of a step ≤ now or one of
    /// those, so none works again; the next step's code does.
    public static func totpWatermark(stored: Int64?, period: Int, nowMillis: Int64, uses: [Use] = []) -> Int64 {
        guard period > 0 else { return stored ?? .min }
        let reached = uses.map { step(of: $0.timeMillis, period: period) &+ Int64($0.offset) }.max() ?? .min
        return max(stored ?? .min, step(of: nowMillis, period: period), reached)
    }

    /// An HOTP factor's next counter: moved past the whole look-ahead window (the stored counter and
    /// `lookAhead` more, saturating), the farthest one accepted code after the copy could reach, or
    /// past every use of `uses` when they reach farther (each moved the counter past its offset:
    /// their sum counts once more a use that raced another, which errs on the safe side).
    public static func hotpCounter(stored: UInt64, lookAhead: Int, uses: [Use] = []) -> UInt64 {
        let window = saturatingAdd(stored, UInt64(max(lookAhead, 0)) + 1)
        let used = uses.reduce(stored) { saturatingAdd($0, UInt64(max($1.offset, 0)) + 1) }
        return max(window, used)
    }

    /// The verify state after a restore: `state` with the rule of its method applied.
    public static func restored(_ state: VerifyState, method: OTPMethod, period: Int, nowMillis: Int64, lookAhead: Int,
                                uses: [Use] = []) -> VerifyState {
        var next = state
        switch method {
        case .totp: next.lastStep = totpWatermark(stored: state.lastStep, period: period, nowMillis: nowMillis, uses: uses)
        case .hotp: next.counter = hotpCounter(stored: state.counter, lookAhead: lookAhead, uses: uses)
        }
        return next
    }

    private static func step(of millis: Int64, period: Int) -> Int64 {
        let seconds = millis >= 0 ? millis / 1_000 : -((-millis + 999) / 1_000)
        return OneTimeCode.step(unixTime: seconds, period: period)
    }

    private static func saturatingAdd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }
}
