import TwofoldCore
import TwofoldCrypto

/// One user of a single host's store as `twofoldd move-in` carries it into a tier's store.
public struct MovedUser: Sendable {
    /// The host's record: the active factors with their secrets and replay state, the keys with
    /// their counters, the throttle state, the overrides (the SSH key rule among them), the
    /// first-required and last-success times. A pending enrollment is not moved (its user finishes
    /// enrolling in the tier), nor are contacts.
    public var record: UserRecord
    /// The host's SSH keys of the user (no factors, but keys that open the account all the same).
    public var sshKeys: [SSHKeyRecord]
    /// The unused recovery codes, each with the pepper it was made with (`RecoveryCodeHash.pepper`).
    public var recoveryCodes: [RecoveryCodeHash]
    /// The host's own pepper: a code of the tier that carries it and that the host no longer has
    /// unused was used on the host since an earlier move.
    public var hostPepper: SecretBytes
    /// When the move happens (a recovery code used on the host since is marked used then).
    public var atMillis: Int64

    public init(record: UserRecord, recoveryCodes: [RecoveryCodeHash], hostPepper: SecretBytes, atMillis: Int64, sshKeys: [SSHKeyRecord] = []) {
        self.record = record
        self.sshKeys = sshKeys
        self.recoveryCodes = recoveryCodes
        self.hostPepper = hostPepper
        self.atMillis = atMillis
    }
}

/// What moving one user in did (or, in a dry run, would do).
public enum MoveInOutcome: Sendable, Equatable {
    /// Not enrolled in the tier: written as the host had it.
    case moved
    /// Already in the tier with the same factors and keys (an earlier move): `updated` factors
    /// whose replay state the host's was later than, keys whose counter the host's was, recovery
    /// codes used on the host since, and SSH keys the tier lacked, brought over.
    case alreadyMoved(updated: Int)
    /// Enrolled differently in the tier: nothing written; the reason says how.
    case conflict(String)
}

/// What a move does to one user, decided from the tier's state of that user read under the
/// user's lock, the same on every backend.
package struct MoveInPlan: Sendable {
    package var outcome: MoveInOutcome
    /// A new user: the user row to write (the host's, merged with a tier row that has no factors),
    /// with the host's factors and keys.
    package var newUser: UserRecord?
    /// An already moved user: the factors whose replay state is to be raised, with the state.
    package var replay: [(factor: String, verify: VerifyState)] = []
    /// An already moved user: the keys whose counter is to be raised (the host saw a later one),
    /// so that an assertion used on either side is not accepted again.
    package var keyCounters: [(key: String, signCount: UInt32)] = []
    /// An already moved user: the tier's recovery codes (indexes) the host used since.
    package var usedCodes: [Int] = []
    /// The host's SSH keys the tier's user lacks (by key), to add, new user or not.
    package var sshKeys: [SSHKeyRecord] = []

    /// A new user's key whose credential is another user's in the tier (each backend looks).
    package static let keyTaken = MoveInPlan(outcome: .conflict("a key of the user is registered to another user in the tier"))
    /// An SSH key to add that is another user's in the tier (each backend looks).
    package static let sshKeyTaken = MoveInPlan(outcome: .conflict("an SSH key of the user is registered to another user in the tier"))

    /// The plan for the factors and keys (`decide` below), then the host's SSH keys the tier's
    /// user lacks, added: the tier's own stay (a user may have added some there); one of the
    /// host's whose name is another key of the user's in the tier is a conflict.
    package static func decide(_ moved: MovedUser, tier: UserRecord?, tierSSHKeys: [SSHKeyRecord],
                               tierCodes: [(index: Int, hash: RecoveryCodeHash)]) -> MoveInPlan {
        var plan = decide(moved, tier: tier, tierCodes: tierCodes)
        if case .conflict = plan.outcome { return plan }
        let missing = moved.sshKeys.filter { key in !tierSSHKeys.contains { $0.key.blob == key.key.blob } }
        if let clash = missing.first(where: { key in tierSSHKeys.contains { $0.name == key.name } }) {
            return MoveInPlan(outcome: .conflict("SSH key '\(clash.name)' is another key in the tier"))
        }
        plan.sshKeys = missing
        // A tier user with nothing yet (its row may be there, with the same state) gets the host's keys: moved.
        let newToTier = (tier.map { $0.factors.isEmpty && $0.keys.isEmpty } ?? true) && tierSSHKeys.isEmpty
        if case .alreadyMoved(let updated) = plan.outcome {
            plan.outcome = newToTier && !missing.isEmpty ? .moved : .alreadyMoved(updated: updated + missing.count)
        }
        return plan
    }

    static func decide(_ moved: MovedUser, tier: UserRecord?, tierCodes: [(index: Int, hash: RecoveryCodeHash)]) -> MoveInPlan {
        let host = moved.record
        guard let tier, !tier.factors.isEmpty || !tier.keys.isEmpty else {
            if tier?.pendingFactor != nil, !host.factors.isEmpty || !host.keys.isEmpty {
                return MoveInPlan(outcome: .conflict("an enrollment is pending in the tier"))
            }
            let user = merged(host, into: tier)
            // A user without factors moved before: its row is already what the move would write.
            if host.factors.isEmpty, host.keys.isEmpty, let tier, sameRow(user, tier) { return MoveInPlan(outcome: .alreadyMoved(updated: 0)) }
            return MoveInPlan(outcome: .moved, newUser: user)
        }
        if let reason = difference(host.factors, tier.factors) ?? difference(host.keys, tier.keys) { return MoveInPlan(outcome: .conflict(reason)) }
        var plan = MoveInPlan(outcome: .alreadyMoved(updated: 0))
        for factor in host.factors {
            if let stored = tier.factor(factor.name), let later = later(factor.verify, than: stored.verify) {
                plan.replay.append((factor.name, later))
            }
        }
        for key in host.keys where key.signCount > tier.keys.first(where: { $0.name == key.name })?.signCount ?? .max {
            plan.keyCounters.append((key.name, key.signCount))
        }
        let unusedOnHost = moved.recoveryCodes.map { ($0.salt, $0.hash) }
        plan.usedCodes = tierCodes.filter { code in
            guard let pepper = code.hash.pepper, pepper.count == moved.hostPepper.count, pepper.constantTimeEquals(moved.hostPepper) else { return false }
            return !unusedOnHost.contains { $0.0 == code.hash.salt && $0.1 == code.hash.hash }
        }.map(\.index)
        plan.outcome = .alreadyMoved(updated: plan.replay.count + plan.keyCounters.count + plan.usedCodes.count)
        return plan
    }

    /// Why the host's factors are not the tier's (names, OTP settings, secrets); nil: the same.
    static func difference(_ host: [FactorRecord], _ tier: [FactorRecord]) -> String? {
        let hostNames = host.map(\.name).sorted(), tierNames = tier.map(\.name).sorted()
        guard hostNames == tierNames else {
            return "other factors in the tier (host: \(describe(hostNames)); tier: \(describe(tierNames)))"
        }
        for factor in host {
            guard let stored = tier.first(where: { $0.name == factor.name }) else { continue }
            guard stored.parameters == factor.parameters else { return "factor '\(factor.name)' has other OTP settings in the tier" }
            guard let a = factor.secret, let b = stored.secret, a.count == b.count, a.constantTimeEquals(b) else {
                return "factor '\(factor.name)' has another secret in the tier"
            }
        }
        return nil
    }

    /// Why the host's keys are not the tier's (names, credentials); nil: the same.
    static func difference(_ host: [Fido2Credential], _ tier: [Fido2Credential]) -> String? {
        let hostNames = host.map(\.name).sorted(), tierNames = tier.map(\.name).sorted()
        guard hostNames == tierNames else {
            return "other keys in the tier (host: \(describe(hostNames)); tier: \(describe(tierNames)))"
        }
        for key in host where !tier.contains(where: { $0.name == key.name && $0.id == key.id && $0.publicKey == key.publicKey }) {
            return "key '\(key.name)' is another key in the tier"
        }
        return nil
    }

    private static func describe(_ names: [String]) -> String { names.isEmpty ? "none" : names.joined(separator: ", ") }

    /// The host's replay state where it is later than the tier's (a higher TOTP step or HOTP
    /// counter), so that no code used on either side works again; nil: the tier's is not earlier.
    static func later(_ host: VerifyState, than tier: VerifyState) -> VerifyState? {
        guard (host.lastStep ?? .min) > (tier.lastStep ?? .min) || host.counter > tier.counter else { return nil }
        let lastStep = [host.lastStep, tier.lastStep].compactMap { $0 }.max()
        return VerifyState(lastStep: lastStep, counter: max(host.counter, tier.counter), drift: host.drift, lastOffset: host.lastOffset)
    }

    /// Whether the user rows hold the same throttle state, overrides and times.
    static func sameRow(_ a: UserRecord, _ b: UserRecord) -> Bool {
        a.throttle == b.throttle && a.requirement == b.requirement && a.factorKinds == b.factorKinds && a.sshKeyRule == b.sshKeyRule
            && a.firstRequiredMillis == b.firstRequiredMillis && a.lastSuccessMillis == b.lastSuccessMillis
    }

    /// The host's user row, over a tier row without factors (overrides, a first-required time,
    /// failures): the tier's overrides stay where set, the stricter throttle state, the earlier
    /// first-required time and the later last success.
    static func merged(_ host: UserRecord, into tier: UserRecord?) -> UserRecord {
        guard let tier else { return host }
        var user = host
        if tier.requirement != .policy { user.requirement = tier.requirement }
        user.factorKinds = tier.factorKinds ?? host.factorKinds
        user.sshKeyRule = tier.sshKeyRule ?? host.sshKeyRule
        user.firstRequiredMillis = [host.firstRequiredMillis, tier.firstRequiredMillis].compactMap { $0 }.min()
        user.lastSuccessMillis = [host.lastSuccessMillis, tier.lastSuccessMillis].compactMap { $0 }.max()
        user.throttle = ThrottleState(failures: max(host.throttle.failures, tier.throttle.failures),
                                      notBeforeMillis: [host.throttle.notBeforeMillis, tier.throttle.notBeforeMillis].compactMap { $0 }.max(),
                                      lockedUntilMillis: [host.throttle.lockedUntilMillis, tier.throttle.lockedUntilMillis].compactMap { $0 }.max())
        return user
    }
}

/// The words both backends use when a host's audit records were copied by another move meanwhile.
package enum MovedAudit {
    package static func raced(_ host: String) -> String {
        "the audit records of host '\(host)' were copied meanwhile by another move-in; run it again"
    }
}
