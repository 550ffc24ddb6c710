import Logging
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// Enrollment, shared by `twofoldctl enroll` and enroll-at-login: issue a pending secret, verify
/// code(s) from the app against it, then activate it: with fresh recovery codes for a first factor,
/// keeping the user's set for a further one (see `recoverySet`). A pending enrollment never changes
/// how logins work.
final class EnrollmentService: Sendable {
    /// A pending enrollment whose codes were right, waiting for the user to confirm the recovery
    /// codes are saved (CLI flow). Only hashes are kept; nil keeps the user's set.
    struct Verified: Sendable {
        var hashes: [RecoveryCodeHash]?
        var verify: VerifyState
        var expiresMillis: Int64
        /// The factor the enrollment makes (or gives a new secret), named in the audit record.
        var factor: String
    }

    let store: any TwofoldStore
    let clock: any WallClock
    let policy: PolicyHolder
    let recoveryPepper: SecretBytes
    /// Read at each enrollment (a reload may change it).
    let issuer: @Sendable () -> String
    let logger: Logger
    private let verified = Mutex<[String: Verified]>([:])
    static let confirmationWindowMillis: Int64 = 15 * 60_000

    init(store: any TwofoldStore, clock: any WallClock, policy: PolicyHolder, recoveryPepper: SecretBytes, issuer: @escaping @Sendable @autoclosure () -> String, logger: Logger) {
        self.store = store
        self.clock = clock
        self.policy = policy
        self.recoveryPepper = recoveryPepper
        self.issuer = issuer
        self.logger = logger
    }

    /// Issues a new pending secret for factor `factor` (replacing any pending one, which is never
    /// shown again) and describes it. Activating it adds the factor, or replaces the one of that name.
    func begin(user: String, factor: String) async throws -> EnrollmentOffer {
        verified.withLock { _ = $0.removeValue(forKey: user) }
        let parameters = policy.current.newEnrollment
        let secret = try OTPSecret.generate()
        try await store.beginEnrollment(user: user, factor: factor, secret: secret, parameters: parameters, atMillis: clock.nowMillis())
        return offer(user: user, factor: factor, secret: secret, parameters: parameters)
    }

    private func offer(user: String, factor: String, secret: SecretBytes, parameters: OTPParameters) -> EnrollmentOffer {
        let uri = OTPAuthURI(issuer: issuer(), account: user, secret: secret, parameters: parameters)
        var raw = secret.copyBytes()
        defer { Crypto.wipe(&raw) }
        return EnrollmentOffer(user: user, uri: uri.uriString(), secretBase32: Base32.encode(raw),
                               digits: parameters.digits, period: parameters.period, algorithm: parameters.algorithm.rawValue,
                               codesRequired: policy.current.document.enrollmentCodes, factor: factor)
    }

    /// How many codes the policy asks for at enrollment.
    var codesRequired: Int { policy.current.document.enrollmentCodes }

    /// Checks the code(s) against the pending secret. With two codes they must be from
    /// consecutive steps. Returns the verify state that makes those codes unusable afterwards.
    func check(user: String, codes: [String]) async throws -> (state: VerifyState, factor: String) {
        guard let pending = try await store.pendingEnrollment(user: user) else {
            throw ControlFailure(.notFound, "no enrollment is waiting for confirmation; start one with 'twofoldctl enroll'")
        }
        let needed = codesRequired
        guard codes.count == needed else {
            throw ControlFailure(.invalidRequest, "policy asks for \(needed) consecutive code\(needed == 1 ? "" : "s") from the app")
        }
        let window = policy.current.windowPolicy
        var state = VerifyState()
        if pending.parameters.method == .hotp { state.counter = 0 }
        var previous: Int64?
        for code in codes {
            let outcome = CodeChecker.check(code: code, secret: pending.secret, parameters: pending.parameters,
                                            state: state, nowMillis: clock.nowMillis(), policy: window)
            guard case .accepted(let step, _, let next) = outcome, previous.map({ step == $0 + 1 }) ?? true else {
                throw ControlFailure(.invalidCode, needed == 1
                    ? "that code does not match the new secret; check the app's clock and type the current code"
                    : "those codes do not match the new secret as two consecutive codes")
            }
            previous = step
            state = next
        }
        // A code seen at enrollment says nothing about clock drift yet.
        state.drift = 0
        state.lastOffset = nil
        return (state, pending.factor)
    }

    /// CLI flow, step 2: verified codes give fresh recovery codes, or none (empty) when the user's
    /// set is kept; activation waits for `activate`.
    func verify(user: String, codes: [String]) async throws -> [String] {
        let (state, factor) = try await check(user: user, codes: codes)
        let (codes, hashes) = try await recoverySet(for: user)
        verified.withLock {
            $0[user] = Verified(hashes: hashes, verify: state, expiresMillis: clock.nowMillis() + Self.confirmationWindowMillis, factor: factor)
        }
        return codes
    }

    /// CLI flow, step 3: the user saved the codes; the enrollment becomes active. Returns the
    /// factor's name (a restore reads it in the audit record: a new secret revokes the old one).
    @discardableResult
    func activate(user: String) async throws -> String {
        let now = clock.nowMillis()
        guard let entry = verified.withLock({ $0.removeValue(forKey: user) }), entry.expiresMillis > now else {
            throw ControlFailure(.notFound, "nothing to activate: verify a code first (verified enrollments expire after 15 minutes)")
        }
        try await store.activateEnrollment(user: user, recoveryCodes: entry.hashes, verify: entry.verify, atMillis: now)
        return entry.factor
    }

    /// Login flow: right code(s) activate at once; returns the recovery codes to show. Enroll at
    /// login is offered only to users without an active factor: always a first factor, a fresh set.
    func verifyAndActivate(user: String, codes: [String]) async throws -> [String] {
        let state = try await check(user: user, codes: codes).state
        let (codes, hashes) = try makeRecoveryCodes()
        try await store.activateEnrollment(user: user, recoveryCodes: hashes, verify: state, atMillis: clock.nowMillis())
        return codes
    }

    /// The recovery codes an enrollment brings. A first factor gets a fresh set. A further factor
    /// (or a new secret for one) keeps the user's set: it was saved once and must not be voided
    /// silently (`regenerateRecoveryCodes` replaces it on request); ([], nil) then. A user whose set
    /// is used up (or who never had one, as after an import) gets a fresh set, since none is voided.
    func recoverySet(for user: String) async throws -> (codes: [String], hashes: [RecoveryCodeHash]?) {
        if let record = try await store.user(user), record.hasFactor, record.recoveryCodesLeft > 0 {
            return ([], nil)
        }
        let (codes, hashes) = try makeRecoveryCodes()
        return (codes, hashes)
    }

    /// A fresh set of recovery codes and their salted hashes.
    func makeRecoveryCodes() throws -> (codes: [String], hashes: [RecoveryCodeHash]) {
        let codes = try RecoveryCodes.generate()
        let hashes = try codes.map { code -> RecoveryCodeHash in
            guard let canonical = RecoveryCodes.canonical(code) else { throw ControlFailure(.unavailable, "recovery code generation failed") }
            return try RecoveryCodes.makeHash(canonical: canonical, pepper: recoveryPepper)
        }
        return (codes, hashes)
    }
}
