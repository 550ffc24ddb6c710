import TwofoldCrypto

/// Per-user replay and drift state. Persisted by the store; decided on by `CodeChecker`.
public struct VerifyState: Codable, Sendable, Equatable {
    /// TOTP: the last accepted time step; a code is accepted only for a later step. nil: none yet.
    public var lastStep: Int64?
    /// HOTP: the next counter value that may be accepted (the counter moves past each match).
    public var counter: UInt64
    /// Learned drift: the centre of the window, in steps relative to the clock (bounded by policy).
    public var drift: Int
    /// Offset (in steps) of the last accepted code, evidence for re-centring.
    public var lastOffset: Int?

    public init(lastStep: Int64? = nil, counter: UInt64 = 0, drift: Int = 0, lastOffset: Int? = nil) {
        self.lastStep = lastStep
        self.counter = counter
        self.drift = drift
        self.lastOffset = lastOffset
    }
}

/// How far from the clock (TOTP) or the counter (HOTP) a code may be.
public struct WindowPolicy: Codable, Sendable, Equatable {
    /// TOTP steps on each side of the centre that are checked (default ±1).
    public var window: Int
    /// The most the centre may be moved by learned drift, in steps.
    public var maxDrift: Int
    /// HOTP: counters checked ahead of the stored counter (default 10).
    public var hotpLookAhead: Int

    public init(window: Int = 1, maxDrift: Int = 3, hotpLookAhead: Int = 10) {
        self.window = window
        self.maxDrift = maxDrift
        self.hotpLookAhead = hotpLookAhead
    }
}

/// Per-user throttle state. Persisted by the store; decided on by `Throttle`.
public struct ThrottleState: Codable, Sendable, Equatable {
    /// Consecutive failures since the last success or unlock.
    public var failures: Int
    /// No attempt is checked before this time (ms since epoch); nil: no delay pending.
    public var notBeforeMillis: Int64?
    /// Locked until this time (ms since epoch); nil: not locked.
    public var lockedUntilMillis: Int64?

    public init(failures: Int = 0, notBeforeMillis: Int64? = nil, lockedUntilMillis: Int64? = nil) {
        self.failures = failures
        self.notBeforeMillis = notBeforeMillis
        self.lockedUntilMillis = lockedUntilMillis
    }
}

/// Throttle limits.
public struct ThrottlePolicy: Codable, Sendable, Equatable {
    /// Consecutive failures that lock the user (default 10; NIST SP 800-63B allows at most 100).
    public var maxFailures: Int
    /// Delay after the first failure; it doubles with each further one.
    public var baseDelayMillis: Int64
    /// Upper bound of the delay.
    public var maxDelayMillis: Int64
    /// How long a lock lasts before it clears by itself.
    public var lockDurationMillis: Int64

    public init(maxFailures: Int = 10, baseDelayMillis: Int64 = 1_000, maxDelayMillis: Int64 = 30_000, lockDurationMillis: Int64 = 15 * 60_000) {
        self.maxFailures = maxFailures
        self.baseDelayMillis = baseDelayMillis
        self.maxDelayMillis = maxDelayMillis
        self.lockDurationMillis = lockDurationMillis
    }
}

/// One stored recovery code: a random salt and HMAC-SHA256(pepper, salt || canonical code).
public struct RecoveryCodeHash: Sendable, Equatable {
    public var salt: [UInt8]
    public var hash: [UInt8]
    /// The pepper this hash was made with when it is not the store's own: codes moved in from a
    /// host's store (`twofoldd move-in`) keep that host's pepper, since the codes themselves are
    /// not known to re-hash them. Nil: the store's pepper.
    public var pepper: SecretBytes?

    public init(salt: [UInt8], hash: [UInt8], pepper: SecretBytes? = nil) {
        self.salt = salt
        self.hash = hash
        self.pepper = pepper
    }

    public static func == (a: RecoveryCodeHash, b: RecoveryCodeHash) -> Bool {
        guard a.salt == b.salt, a.hash == b.hash else { return false }
        switch (a.pepper, b.pepper) {
        case (nil, nil): return true
        case let (x?, y?): return x.count == y.count && x.constantTimeEquals(y)
        default: return false
        }
    }
}
