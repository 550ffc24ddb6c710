import TwofoldCore

/// What a restored store gets before any login reaches it (`twofoldd restore`): the copy cannot
/// know which codes were used after it was taken, so every factor moves past all of them
/// (`RestoreReplay`), and the recovery codes of the copy, which may have been used since, are
/// counted and, when asked, invalidated. Both backends apply the same rules.
public struct RestoreRules: Sendable, Equatable {
    /// The daemon's clock at the restore: TOTP watermarks are raised to its step.
    public var nowMillis: Int64
    /// The HOTP look-ahead the daemon checks with (`WindowPolicy.hotpLookAhead`).
    public var hotpLookAhead: Int
    /// Mark every unused recovery code used (the users get new ones with `twofoldctl recovery-codes`).
    public var invalidateRecoveryCodes: Bool
    /// Codes accepted after the copy, found in the audit exports: by user, then by factor name.
    public var usesAfter: [String: [String: [RestoreReplay.Use]]]

    public init(nowMillis: Int64, hotpLookAhead: Int, invalidateRecoveryCodes: Bool,
                usesAfter: [String: [String: [RestoreReplay.Use]]] = [:]) {
        self.nowMillis = nowMillis
        self.hotpLookAhead = hotpLookAhead
        self.invalidateRecoveryCodes = invalidateRecoveryCodes
        self.usesAfter = usesAfter
    }
}

/// What `secureRestoredStore` changed (or found).
public struct RestoreReplayResult: Sendable, Equatable, Codable {
    /// Users in the store (rows), and those with at least one OTP factor.
    public var users = 0
    public var usersWithFactors = 0
    /// OTP factors examined.
    public var factors = 0
    /// TOTP watermarks raised, HOTP counters moved on.
    public var watermarksRaised = 0
    public var countersAdvanced = 0
    /// Users with unused recovery codes (all older than the copy), and of them the sets invalidated.
    public var recoverySets = 0
    public var recoverySetsInvalidated = 0

    public init() {}
}

extension TwofoldStore {
    /// One restore step for a backend that lacks it.
    public func secureRestoredStore(_ rules: RestoreRules) async throws -> RestoreReplayResult {
        throw StoreError.database("this store backend cannot be restored (no restore rules)")
    }
}

/// The rows both backends page through to apply the rules: a factor's replay state and method.
package struct RestoredFactor: Sendable, Equatable {
    package var user: String
    package var name: String
    package var method: OTPMethod
    package var period: Int
    package var verify: VerifyState

    package init(user: String, name: String, method: OTPMethod, period: Int, verify: VerifyState) {
        self.user = user
        self.name = name
        self.method = method
        self.period = period
        self.verify = verify
    }

    /// The factor's state after the rules, nil when they change nothing.
    package func restored(_ rules: RestoreRules) -> VerifyState? {
        let next = RestoreReplay.restored(verify, method: method, period: period, nowMillis: rules.nowMillis, lookAhead: rules.hotpLookAhead,
                                          uses: rules.usesAfter[user]?[name] ?? [])
        return next == verify ? nil : next
    }
}
