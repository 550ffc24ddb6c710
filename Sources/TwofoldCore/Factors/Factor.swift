/// The kinds of second factor. Stored by raw value. A new kind is a case here, a type conforming
/// to `Factor` (one file in this folder), and how the store applies its `FactorUse`.
public enum FactorKind: String, Codable, Sendable, CaseIterable {
    /// RFC 6238 time-based codes.
    case totp
    /// RFC 4226 counter-based codes.
    case hotp
    /// One-time recovery codes: one set per user.
    case recovery
    /// A code sent by email to a verified address of the user (`DeliveredCodeFactor`).
    case email
    /// A code sent by text message to a verified phone number of the user.
    case sms
    /// A FIDO2 security key at the console (`Fido2Factor`): offered only to modules that can talk to keys.
    case fido2
}

/// What a factor decided on one answer.
public enum FactorVerdict: Sendable, Equatable {
    /// Proven, once `use` is durable: the store applies it atomically (conditionally) before SUCCESS.
    case accepted(FactorUse)
    /// Right, but already used (a step not later than the last, a counter below the current one).
    case replay
    /// Of the right form, but wrong.
    case rejected
    /// Not of this factor's form; nothing was computed.
    case malformed
}

/// The state change that an accepted answer makes, applied by the store in the login's commit.
/// Each applies only if the state still allows it, so a code is accepted once (RFC 6238 §5.2).
public enum FactorUse: Sendable, Equatable {
    /// TOTP: `step` of factor `factor` is used (applies only if later than its last step);
    /// `verify` carries the learned drift. `offset`: steps from the clock.
    case timeStep(factor: String, step: Int64, offset: Int, verify: VerifyState)
    /// HOTP: `counter` of factor `factor` is used; its counter moves past it (applies only if not below).
    case counter(factor: String, counter: UInt64, offset: Int)
    /// Recovery code number `index` is used (applies only if still unused).
    case recoveryCode(index: Int)
    /// The user's delivered login code `id` is used: the store deletes it (applies only if it is
    /// still the user's code, so it works once).
    case deliveredCode(channel: DeliveryChannel, id: Int64)
    /// An assertion of the user's key `name` (credential `credential`) with counter `signCount`:
    /// the store records the counter and the use, only if `Fido2Credential.counterAdvances` from the
    /// stored counter (so a cloned key's assertion is refused fleet-wide).
    case keyAssertion(name: String, credential: [UInt8], signCount: UInt32)

    /// The factor the use belongs to (recovery codes: "recovery").
    public var factorName: String {
        switch self {
        case .timeStep(let factor, _, _, _), .counter(let factor, _, _): factor
        case .recoveryCode: RecoveryCodeFactor.setName
        case .deliveredCode(let channel, _): channel.rawValue
        case .keyAssertion(let name, _, _): name
        }
    }
}

/// One second factor of a user: what it prompts, how its answers are recognised and checked.
/// Checking is pure: the caller commits the `FactorUse` of an accepted answer.
public protocol Factor: Sendable {
    /// The kind, as stored.
    static var kind: FactorKind { get }
    /// What the login dialog asks for.
    static var prompt: String { get }
    /// The factor's name, unique per user ("app", "tablet"; the recovery set is "recovery").
    var name: String { get }
    /// Whether `answer` has the form of this factor's answers, from its form alone (no crypto).
    func claims(_ answer: String) -> Bool
    /// Checks `answer`; the time taken does not depend on whether or where a secret matched.
    func check(_ answer: String, nowMillis: Int64, policy: WindowPolicy) -> FactorVerdict
}

extension Factor {
    public var kind: FactorKind { Self.kind }
}
