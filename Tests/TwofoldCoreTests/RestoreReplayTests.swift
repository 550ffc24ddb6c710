import Testing
import TwofoldCore
import TwofoldCrypto

/// The replay rules of a restore (`twofoldd restore`), checked against the code checker itself:
/// a code accepted after the copy was taken is refused once the copy is restored.
struct RestoreReplayTests {
    let secret = SecretBytes(Array("12345678901234567890".utf8))
    let taken: Int64 = 1_700_000_000_000

    @Test("the TOTP watermark is the current step, never lowered; the period and negative times count")
    func totpWatermark() {
        #expect(RestoreReplay.totpWatermark(stored: nil, period: 30, nowMillis: 59_999) == 1)
        #expect(RestoreReplay.totpWatermark(stored: 5, period: 30, nowMillis: 60_000) == 5)
        #expect(RestoreReplay.totpWatermark(stored: 1, period: 60, nowMillis: 600_000) == 10)
        #expect(RestoreReplay.totpWatermark(stored: nil, period: 30, nowMillis: -1) == -1)
        #expect(RestoreReplay.totpWatermark(stored: 7, period: 0, nowMillis: 600_000) == 7, "a bad period changes nothing")
    }

    @Test("the HOTP counter moves past the look-ahead window, saturating")
    func hotpCounter() {
        #expect(RestoreReplay.hotpCounter(stored: 4, lookAhead: 10) == 15)
        #expect(RestoreReplay.hotpCounter(stored: .max - 3, lookAhead: 10) == .max)
        #expect(RestoreReplay.hotpCounter(stored: 4, lookAhead: -1) == 5)
    }

    @Test("every TOTP code accepted after the copy is refused after the restore; the next step's works", arguments: [0, 1, 29, 30, 95])
    func totpUsesAfterTheCopy(secondsLater: Int64) {
        let parameters = OTPParameters()
        let backup = VerifyState(lastStep: nil)
        var live = backup
        var used: [String] = []
        // Logins after the copy, the last `secondsLater` s after it; the restore at that moment.
        for at in Array(stride(from: taken, through: taken + secondsLater * 1_000, by: 10_000)) + [taken + secondsLater * 1_000] {
            let code = OneTimeCode.totp(secret: secret, unixTime: at / 1_000, parameters: parameters)
            if case .accepted(_, _, let next) = check(code, live, at) { live = next; used.append(code) }
        }
        #expect(!used.isEmpty)
        let now = taken + secondsLater * 1_000
        let restored = RestoreReplay.restored(backup, method: .totp, period: 30, nowMillis: now, lookAhead: 10)
        // Refused: a replay, or (for codes older than the window) no match at all.
        for code in used { #expect(!accepted(check(code, restored, now)), "a code used after the copy") }
        let next = OneTimeCode.totp(secret: secret, unixTime: now / 1_000 + 30, parameters: parameters)
        guard case .accepted = check(next, restored, now) else { Issue.record("the next step's code"); return }
    }

    @Test("an HOTP code accepted after the copy is refused after the restore (the window's far edge too); the token's next one works",
          arguments: [UInt64(3), 9, 13])
    func hotpUseAfterTheCopy(usedCounter: UInt64) {
        let parameters = OTPParameters(method: .hotp)
        let backup = VerifyState(counter: 3)
        let code = OneTimeCode.hotp(secret: secret, counter: usedCounter, digits: 6, algorithm: parameters.algorithm)
        guard case .accepted = check(code, backup, taken, parameters) else { Issue.record("a use after the copy"); return }
        let restored = RestoreReplay.restored(backup, method: .hotp, period: 30, nowMillis: taken, lookAhead: WindowPolicy().hotpLookAhead)
        #expect(!accepted(check(code, restored, taken, parameters)), "the counter used after the copy")
        let following = OneTimeCode.hotp(secret: secret, counter: 14, digits: 6, algorithm: parameters.algorithm)
        guard case .accepted = check(following, restored, taken, parameters) else { Issue.record("the token's next code"); return }
    }

    @Test("HOTP codes used far past the copy's window, as the audit names them (offset each), are refused after the restore; the next works")
    func hotpUsesFromTheAudit() {
        let parameters = OTPParameters(method: .hotp)
        let backup = VerifyState(counter: 3)
        var live = backup
        var used: [String] = [], uses: [RestoreReplay.Use] = []
        // 28 logins after the copy, some skipping codes: the token ends far past stored + look-ahead.
        for counter in Array(UInt64(3)...20) + [24, 25, 30] {
            let code = OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: parameters.algorithm)
            guard case .accepted(_, let offset, let next) = check(code, live, taken, parameters) else { Issue.record("use \(counter)"); return }
            live = next
            used.append(code)
            uses.append(RestoreReplay.Use(timeMillis: taken + 1, offset: offset))
        }
        let lookAhead = WindowPolicy().hotpLookAhead
        let windowOnly = RestoreReplay.restored(backup, method: .hotp, period: 30, nowMillis: taken, lookAhead: lookAhead)
        #expect(used.contains { accepted(check($0, windowOnly, taken, parameters)) }, "without the audit, a use past the window works again")
        let restored = RestoreReplay.restored(backup, method: .hotp, period: 30, nowMillis: taken, lookAhead: lookAhead, uses: uses)
        #expect(restored.counter == 31)
        for code in used { #expect(!accepted(check(code, restored, taken, parameters)), "a code used after the copy") }
        let following = OneTimeCode.hotp(secret: secret, counter: 31, digits: 6, algorithm: parameters.algorithm)
        #expect(accepted(check(following, restored, taken, parameters)), "the token's next code")
    }

    @Test("a TOTP code of a future step (the drift window) used just before the restore is refused after it when the audit names it")
    func totpFutureStepFromTheAudit() {
        let now = taken + 5_000
        let future = OneTimeCode.totp(secret: secret, unixTime: taken / 1_000 + 30, parameters: OTPParameters())
        guard case .accepted(_, let offset, _) = check(future, VerifyState(lastStep: nil), taken) else { Issue.record("a future step's code"); return }
        #expect(offset == 1)
        let windowOnly = RestoreReplay.restored(VerifyState(lastStep: nil), method: .totp, period: 30, nowMillis: now, lookAhead: 10)
        #expect(accepted(check(future, windowOnly, now)), "without the audit it works again until its step passes")
        let restored = RestoreReplay.restored(VerifyState(lastStep: nil), method: .totp, period: 30, nowMillis: now, lookAhead: 10,
                                              uses: [RestoreReplay.Use(timeMillis: taken, offset: offset)])
        #expect(!accepted(check(future, restored, now)))
    }

    private func accepted(_ outcome: CheckOutcome) -> Bool {
        if case .accepted = outcome { return true }
        return false
    }

    private func check(_ code: String, _ state: VerifyState, _ now: Int64, _ parameters: OTPParameters = OTPParameters()) -> CheckOutcome {
        CodeChecker.check(code: code, secret: secret, parameters: parameters, state: state, nowMillis: now, policy: WindowPolicy())
    }
}
