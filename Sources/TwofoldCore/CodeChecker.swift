import TwofoldCrypto

/// The decision on one typed code.
public enum CheckOutcome: Sendable, Equatable {
    /// step: the TOTP step (or HOTP counter) that matched; offset: steps from the current clock step
    /// (HOTP: from state.counter). `newState` must be persisted before answering.
    case accepted(step: Int64, offset: Int, newState: VerifyState)
    /// Matched a step ≤ state.lastStep (TOTP) or a counter just below state.counter (HOTP).
    case replay
    /// No match in the window.
    case rejected
    /// Refused before any crypto (not digits / wrong length).
    case malformed
}

/// Checks a typed code against a window of steps (TOTP) or counters (HOTP).
///
/// Every candidate code is computed and compared in constant time, and the match is selected
/// with masks, so timing does not depend on whether or where the code matched.
public enum CodeChecker {
    /// Decides on `code` for an enrollment with `secret` and `parameters`, given the stored `state`.
    /// The window (`policy.window`, `policy.hotpLookAhead`) is expected to be small.
    public static func check(code: String, secret: SecretBytes, parameters: OTPParameters,
                             state: VerifyState, nowMillis: Int64, policy: WindowPolicy) -> CheckOutcome {
        guard var input = CodeInput.normalize(code, digits: parameters.digits) else { return .malformed }
        defer { Crypto.wipe(&input) }
        switch parameters.method {
        case .totp:
            guard parameters.period > 0 else { return .rejected }
            return checkTOTP(input, secret: secret, parameters: parameters, state: state, nowMillis: nowMillis, policy: policy)
        case .hotp:
            return checkHOTP(input, secret: secret, parameters: parameters, state: state, policy: policy)
        }
    }

    private static func checkTOTP(_ input: [UInt8], secret: SecretBytes, parameters: OTPParameters,
                                  state: VerifyState, nowMillis: Int64, policy: WindowPolicy) -> CheckOutcome {
        let seconds = floorDivide(nowMillis, 1_000)
        let current = OneTimeCode.step(unixTime: seconds, period: parameters.period)
        let maxDrift = max(policy.maxDrift, 0)
        let drift = min(max(state.drift, -maxDrift), maxDrift)
        let width = Int64(max(policy.window, 0))
        let centre = current + Int64(drift)
        let lastStep = state.lastStep ?? .min

        var freshStep: Int64 = 0
        var hasFresh: Int64 = 0
        var hasMatch: Int64 = 0
        var step = centre - width
        while step <= centre + width {
            var candidate = OneTimeCode.hotpDigits(secret: secret, counter: UInt64(bitPattern: step),
                                                   digits: parameters.digits, algorithm: parameters.algorithm)
            let equal = BranchFree.mask(Crypto.constantTimeEqual(candidate, input))
            Crypto.wipe(&candidate)
            // Ascending order: the last fresh match kept is the latest step.
            let fresh = equal & BranchFree.mask(step > lastStep)
            freshStep = BranchFree.select(fresh, step, freshStep)
            hasFresh |= fresh
            hasMatch |= equal
            step += 1
        }

        guard hasFresh != 0 else { return hasMatch != 0 ? .replay : .rejected }
        let offset = Int(freshStep - current)
        var next = state
        next.lastStep = freshStep
        next.lastOffset = offset
        // RFC 6238 §6: re-centre only on two accepted codes in a row at the same offset.
        if offset != state.drift, offset == state.lastOffset {
            next.drift = min(max(offset, -maxDrift), maxDrift)
        }
        return .accepted(step: freshStep, offset: offset, newState: next)
    }

    private static func checkHOTP(_ input: [UInt8], secret: SecretBytes, parameters: OTPParameters,
                                  state: VerifyState, policy: WindowPolicy) -> CheckOutcome {
        let lookAhead = UInt64(max(policy.hotpLookAhead, 0))
        let counter = state.counter
        let low = counter >= lookAhead ? counter - lookAhead : 0
        let (sum, overflow) = counter.addingReportingOverflow(lookAhead)
        let high = overflow ? UInt64.max : sum

        var matched: Int64 = 0
        var hasFresh: Int64 = 0
        var hasMatch: Int64 = 0
        var value = low
        while true {
            var candidate = OneTimeCode.hotpDigits(secret: secret, counter: value,
                                                   digits: parameters.digits, algorithm: parameters.algorithm)
            let equal = BranchFree.mask(Crypto.constantTimeEqual(candidate, input))
            Crypto.wipe(&candidate)
            // Keep the first (lowest) match at or above the counter.
            let fresh = equal & BranchFree.mask(value >= counter) & ~hasFresh
            matched = BranchFree.select(fresh, Int64(bitPattern: value), matched)
            hasFresh |= fresh
            hasMatch |= equal
            if value == high { break }
            value += 1
        }

        guard hasFresh != 0 else { return hasMatch != 0 ? .replay : .rejected }
        let matchedCounter = UInt64(bitPattern: matched)
        var next = state
        next.counter = matchedCounter == .max ? .max : matchedCounter + 1
        return .accepted(step: matched, offset: Int(matchedCounter - counter), newState: next)
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let (q, r) = a.quotientAndRemainder(dividingBy: b)
        return r < 0 ? q - 1 : q
    }
}
