import TwofoldCore
import TwofoldCrypto

/// Where a user's enrollment stands.
public enum EnrollmentStatus: String, Codable, Sendable {
    /// A secret was issued but not yet confirmed with a code; logins are unaffected.
    case pending
    /// Confirmed; logins ask for a code.
    case active
}

/// An admin's per-user override of the policy.
public enum RequirementOverride: String, Codable, Sendable {
    /// Policy decides.
    case policy
    /// 2FA required whatever the policy says.
    case required
    /// 2FA not required whatever the policy says.
    case exempt
}

/// One user's stored state, with the factors' secrets already opened by the store.
public struct UserRecord: Sendable {
    public var name: String
    /// The active OTP factors, ordered by name. Empty: not enrolled.
    public var factors: [FactorRecord]
    /// The name of the enrollment waiting for its first code, if any (its secret is not read here).
    public var pendingFactor: String?
    /// Per user, whatever the factors: N factors must not give N times the guesses.
    public var throttle: ThrottleState
    public var requirement: RequirementOverride
    /// The last successful login, with any factor or a recovery code.
    public var lastSuccessMillis: Int64?
    /// Unused recovery codes.
    public var recoveryCodesLeft: Int
    /// When a policy rule first applied to this user (for grace periods); nil: never.
    public var firstRequiredMillis: Int64?
    /// The admin's per-user factor kinds (the first level of the chain); nil: the policy's.
    public var factorKinds: Set<FactorKind>?
    /// The admin's per-user SSH key rule (the first level of the chain user › host › default); nil:
    /// the policy decides. Read with the user's row (the hot read for sshd is `authorizedSSHKeys`).
    public var sshKeyRule: SSHKeyRule?
    /// The user's contacts, verified or waiting for their code, ordered by channel then address.
    /// A verified one is a factor (`email` or `sms`).
    public var contacts: [Contact]
    /// The user's delivered login code, if one was sent and not used or replaced (maybe expired).
    public var deliveredCode: DeliveredCodeRecord?
    /// The user's FIDO2 security keys, ordered by name. Each is a factor (`fido2`).
    public var keys: [Fido2Credential]

    public init(name: String, factors: [FactorRecord] = [], pendingFactor: String? = nil, throttle: ThrottleState = ThrottleState(),
                requirement: RequirementOverride = .policy, lastSuccessMillis: Int64? = nil,
                recoveryCodesLeft: Int = 0, firstRequiredMillis: Int64? = nil, factorKinds: Set<FactorKind>? = nil,
                contacts: [Contact] = [], deliveredCode: DeliveredCodeRecord? = nil, keys: [Fido2Credential] = [],
                sshKeyRule: SSHKeyRule? = nil) {
        self.name = name
        self.factors = factors
        self.pendingFactor = pendingFactor
        self.throttle = throttle
        self.requirement = requirement
        self.lastSuccessMillis = lastSuccessMillis
        self.recoveryCodesLeft = recoveryCodesLeft
        self.firstRequiredMillis = firstRequiredMillis
        self.factorKinds = factorKinds
        self.contacts = contacts
        self.deliveredCode = deliveredCode
        self.keys = keys
        self.sshKeyRule = sshKeyRule
    }

    /// Active with at least one factor (an OTP factor or a verified contact); pending with only an
    /// enrollment waiting; nil: neither.
    public var status: EnrollmentStatus? {
        if hasFactor { return .active }
        return pendingFactor == nil ? nil : .pending
    }

    /// Whether the user has a second factor: an OTP factor, a verified contact or a key.
    public var hasFactor: Bool { !factors.isEmpty || !keys.isEmpty || contacts.contains { $0.isVerified } }

    /// The user's factor kinds: of the OTP factors, the verified contacts and the keys.
    public var kinds: Set<FactorKind> {
        var kinds = Set(factors.map(\.kind)).union(contacts.filter(\.isVerified).map(\.channel.factorKind))
        if !keys.isEmpty { kinds.insert(.fido2) }
        return kinds
    }

    /// Whether the user has a factor of one of `kinds` (no set built: the login path asks this).
    public func hasFactor(ofKindIn kinds: Set<FactorKind>) -> Bool {
        factors.contains { kinds.contains($0.kind) } || contacts.contains { $0.isVerified && kinds.contains($0.channel.factorKind) }
            || (!keys.isEmpty && kinds.contains(.fido2))
    }

    /// The verified contact of `channel`, if any.
    public func verifiedContact(_ channel: DeliveryChannel) -> Contact? {
        contacts.first { $0.channel == channel && $0.isVerified }
    }

    /// The named active factor.
    public func factor(_ name: String) -> FactorRecord? { factors.first { $0.name == name } }

    /// When the first of the active factors was added.
    public var enrolledAtMillis: Int64? { factors.map(\.addedAtMillis).min() }
}

/// A user's email address or phone number. At most one verified and one waiting per channel:
/// verifying the waiting one replaces the verified one.
public struct Contact: Sendable, Equatable, Codable {
    public var channel: DeliveryChannel
    /// Normalised (`ContactAddress.normalize`).
    public var value: String
    public var addedMillis: Int64
    /// When its code was confirmed (or an admin imported it); nil: waiting for its code.
    public var verifiedMillis: Int64?

    public init(channel: DeliveryChannel, value: String, addedMillis: Int64, verifiedMillis: Int64? = nil) {
        self.channel = channel
        self.value = value
        self.addedMillis = addedMillis
        self.verifiedMillis = verifiedMillis
    }

    public var isVerified: Bool { verifiedMillis != nil }
    public var masked: String { ContactAddress.masked(value, channel: channel) }
}

/// A contact with its user (admin listings and imports).
public struct UserContact: Sendable, Equatable {
    public var user: String
    public var contact: Contact

    public init(user: String, contact: Contact) {
        self.user = user
        self.contact = contact
    }
}

/// One sent code, kept for the send limits (per user, per destination, per host) until pruned.
public struct DeliverySend: Sendable, Equatable {
    public var timeMillis: Int64
    public var user: String
    public var channel: DeliveryChannel
    public var destination: String
    public var host: String

    public init(timeMillis: Int64, user: String, channel: DeliveryChannel, destination: String, host: String) {
        self.timeMillis = timeMillis
        self.user = user
        self.channel = channel
        self.destination = destination
        self.host = host
    }
}

/// How many codes went out since a time: to the user, to the destination, from the host.
public struct DeliverySendCounts: Sendable, Equatable {
    public var user: Int
    public var destination: Int
    public var host: Int

    public init(user: Int, destination: Int, host: Int) {
        self.user = user
        self.destination = destination
        self.host = host
    }
}

/// An enrollment waiting for its first code(s): a new factor, or a factor's new secret.
public struct PendingEnrollment: Sendable {
    public var factor: String
    public var secret: SecretBytes
    public var parameters: OTPParameters

    public init(factor: String, secret: SecretBytes, parameters: OTPParameters) {
        self.factor = factor
        self.secret = secret
        self.parameters = parameters
    }
}

/// An active enrollment to import (admin provisioning, migration).
public struct EnrollmentImportRecord: Sendable {
    public var user: String
    /// The factor it adds (or replaces, same name).
    public var factor: String
    public var secret: SecretBytes
    public var parameters: OTPParameters
    public var verify: VerifyState
    /// Replace the user's recovery codes with these; empty keeps the user's set.
    public var recoveryCodes: [RecoveryCodeHash]
    public var atMillis: Int64

    public init(user: String, factor: String, secret: SecretBytes, parameters: OTPParameters, verify: VerifyState,
                recoveryCodes: [RecoveryCodeHash], atMillis: Int64) {
        self.user = user
        self.factor = factor
        self.secret = secret
        self.parameters = parameters
        self.verify = verify
        self.recoveryCodes = recoveryCodes
        self.atMillis = atMillis
    }
}

/// One audit record. Never holds a code or a secret.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var timeMillis: Int64
    /// e.g. "verify", "enroll", "revoke", "unlock", "policy", "recovery".
    public var action: String
    public var user: String?
    public var service: String?
    public var rhost: String?
    public var tty: String?
    public var peerUID: UInt32?
    /// e.g. "success", "failure", "replay", "locked", "denied", "ignored", "error".
    public var outcome: String
    public var reason: String?
    /// The host the event happened on (a fleet's relay, by its certificate; a host registry
    /// change); nil for records from before schema v5 and for events of the daemon's own host.
    public var host: String?

    public init(id: Int64? = nil, timeMillis: Int64, action: String, user: String? = nil, service: String? = nil,
                rhost: String? = nil, tty: String? = nil, peerUID: UInt32? = nil, outcome: String, reason: String? = nil,
                host: String? = nil) {
        self.id = id
        self.timeMillis = timeMillis
        self.action = action
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.peerUID = peerUID
        self.outcome = outcome
        self.reason = reason
        self.host = host
    }
}

/// Filters for reading the audit log; nil means any.
public struct AuditQuery: Sendable, Equatable {
    public var user: String?
    public var sinceMillis: Int64?
    public var outcome: String?
    /// Records of this host only (exact match).
    public var host: String?
    /// Records of this action only ("backup", "verify", ...).
    public var action: String?
    public var limit: Int

    public init(user: String? = nil, sinceMillis: Int64? = nil, outcome: String? = nil, host: String? = nil, action: String? = nil,
                limit: Int = 1000) {
        self.user = user
        self.sinceMillis = sinceMillis
        self.outcome = outcome
        self.host = host
        self.action = action
        self.limit = limit
    }
}

/// One certificate of a registered host (the fleet's host registry). A host may have several
/// (a renewed certificate is added beside the old one); revoking a host revokes all of them.
public struct HostCertificate: Sendable, Equatable, Codable {
    public var host: String            // the host's name (must be in the certificate's SAN)
    public var fingerprint: String     // SHA-256 of the certificate's DER, 64 lowercase hex digits
    public var notAfterMillis: Int64?  // the certificate's expiry, when known
    public var addedMillis: Int64
    public var revokedMillis: Int64?   // nil: in force

    public init(host: String, fingerprint: String, notAfterMillis: Int64? = nil, addedMillis: Int64, revokedMillis: Int64? = nil) {
        self.host = host
        self.fingerprint = fingerprint
        self.notAfterMillis = notAfterMillis
        self.addedMillis = addedMillis
        self.revokedMillis = revokedMillis
    }
}

extension HostCertificate {
    /// What `addHostCertificate` does with `self` given the certificate already stored under its
    /// fingerprint: nothing (the same host, in force), or the conflict to throw. Both backends decide here.
    public func conflict(with stored: HostCertificate) -> StoreError? {
        if stored.revokedMillis != nil {
            return .conflict("certificate \(fingerprint) of host '\(stored.host)' was revoked; a revoked certificate cannot be registered again")
        }
        if stored.host != host {
            return .conflict("certificate \(fingerprint) is registered to host '\(stored.host)'")
        }
        return nil
    }
}

/// A state change that the verify path commits. A batch of them shares one transaction and one
/// sync to disk (group commit); each is applied atomically and reports whether it took effect.
public enum StoreMutation: Sendable {
    /// Apply an accepted answer's `use` (a TOTP step, an HOTP counter, a recovery code, a delivered
    /// code: deleted only if it is still the user's login code of that id and channel, else
    /// `.conflict`; a key assertion: its counter stored only if `Fido2Credential.counterAdvances`
    /// from the stored one, else `.conflict`), only if it is still fresh for its factor, so a code
    /// (or an assertion's count) is never accepted twice;
    /// replay state is per factor. Resets the user's throttle and records the factor's last use
    /// (a recovery or delivered code: the user's last success). A delivered code's expiry, host and
    /// service are the caller's to check (`DeliveredCodeFactor`), not the store's.
    /// It first reads the user's throttle state in the transaction: while a lock or delay is in
    /// force it is refused (`.throttled`) and counted as a failure under `policy`. A step, counter,
    /// delivered code or assertion count refused that way is still used up (a right code whose
    /// dialog was refused must not work later); a refused recovery code stays unused.
    case accept(user: String, use: FactorUse, atMillis: Int64, policy: ThrottlePolicy = ThrottlePolicy())
    /// Use up a TOTP step, an HOTP counter, a delivered login code (of that id) or a key
    /// assertion's count without logging in: a right answer whose client gave up before the
    /// verdict. Changes neither the throttle nor the last use.
    case consume(user: String, use: FactorUse)
    /// Count a failure: the store reads the current throttle state inside the transaction and
    /// stores `Throttle.afterFailure(...)` of it. Result `.appliedFailure(_)` gives the new state.
    /// Per user: whichever factor the answer was for.
    case recordFailure(user: String, atMillis: Int64, policy: ThrottlePolicy)
    /// Append to the audit log.
    case audit(AuditRecord)
    /// The audit record of the attempt (accept or recovery code) placed just before it in the same
    /// `commit` call: stored as given when the attempt applied, otherwise as the store's refusal
    /// (`AuditRecord.resolved(after:)`), so the log never says "success" for a refused code.
    case auditAttempt(AuditRecord)
}

extension AuditRecord {
    /// This record as it stands after the attempt it describes had `result`: unchanged when applied;
    /// "locked" or "failure" with the reason when the store refused it at commit (a lock or delay in
    /// force, or another login that used the step first).
    public func resolved(after result: MutationResult?) -> AuditRecord {
        var record = self
        switch result {
        case .applied?, .appliedFailure?, nil:
            return record
        case .throttled(let state)?:
            let locked = state.lockedUntilMillis.map { $0 > timeMillis } ?? false
            record.outcome = locked ? "locked" : "failure"
            record.reason = locked ? "refused at commit: the account is locked" : "refused at commit: a throttle delay was in force"
        case .conflict?:
            record.outcome = "failure"
            record.reason = "refused at commit: already used by another login (concurrent use)"
        }
        return record
    }
}

/// What a mutation did.
public enum MutationResult: Sendable, Equatable {
    case applied
    /// A failure was counted; the user's new throttle state.
    case appliedFailure(ThrottleState)
    /// An accepting mutation found a lock or delay in force when it committed: not applied, counted
    /// as a failure; the user's new throttle state.
    case throttled(ThrottleState)
    /// The condition did not hold (a replay, an already used recovery code, or no such user).
    case conflict
}

/// Errors of the store. None carries a secret.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The key does not open the database's key check: a wrong key file.
    case wrongKey
    /// The database was written by a newer Twofold (schema `found`, this code knows up to `supported`).
    case schemaTooNew(found: String, supported: String)
    /// A stored row that cannot be read back (truncated, tampered, or sealed for another user).
    case corruptRecord(user: String, reason: String)
    /// A key file that is missing, unreadable, of the wrong size, or readable by others.
    case badKeyFile(String)
    /// The user has no enrollment in the state the operation needs.
    case notEnrolled(String)
    /// The underlying database failed.
    case database(String)
    /// The database cannot be reached (down, restarting, failing over). The store logs such an
    /// outage once when it begins and once when it ends; callers need not log each failure.
    case unreachable(String)
    /// The change contradicts what is stored (a host certificate registered to another host, or
    /// revoked); the message says what.
    case conflict(String)

    public var description: String {
        switch self {
        case .wrongKey: return "the key file does not match this database (wrong key)"
        case .schemaTooNew(let f, let s): return "database schema \(f) is newer than this twofoldd understands (\(s)); upgrade twofoldd"
        case .corruptRecord(let u, let r): return "stored record for user '\(u)' is unreadable: \(r)"
        case .badKeyFile(let r): return "key file: \(r)"
        case .notEnrolled(let u): return "user '\(u)' has no enrollment in the needed state"
        case .database(let r): return "database error: \(r)"
        case .unreachable(let r): return "database unreachable: \(r)"
        case .conflict(let r): return r
        }
    }
}

extension StoreError {
    /// Whether a caller should log this failure itself: an unreachable database is logged by the
    /// store, once per outage.
    public var isLoggedByStore: Bool {
        if case .unreachable = self { return true }
        return false
    }
}

/// Reads the record a login needs, synchronously, on the one thread that owns the reader (an event
/// loop). Not thread-safe: make one per thread with `TwofoldStore.makeLoginReader()`.
public protocol LoginReader: AnyObject {
    /// As `TwofoldStore.user(_:)`, with the secret opened, except that `recoveryCodesLeft` is not
    /// counted (it is 0): a login does not need it.
    func loginRecord(_ name: String) throws -> UserRecord?
}

extension TwofoldStore {
    public func commit(_ mutations: [StoreMutation], completion: @escaping @Sendable (Result<[MutationResult], StoreError>) -> Void) {
        Task {
            do {
                completion(.success(try await commit(mutations)))
            } catch {
                completion(.failure(error as? StoreError ?? .database(String(describing: type(of: error)))))
            }
        }
    }

    public func makeLoginReader() throws -> (any LoginReader)? { nil }

    public var isShared: Bool { false }

    public func loginRecord(_ name: String, setting key: String) async throws -> (record: UserRecord?, setting: String?) {
        async let setting = self.setting(key)
        let record = try await user(name)
        return (record, try await setting)
    }
}

/// Everything the daemon keeps. The daemon, the CLI handlers and the tests use only this
/// interface, so a PostgreSQL backend can stand in for the embedded SQLite one.
public protocol TwofoldStore: Sendable {
    /// The user's record with the secret opened, or nil if the store knows nothing of the user.
    func user(_ name: String) async throws -> UserRecord?

    /// Applies a batch of verify-path mutations in one transaction that is durable on disk
    /// (synchronous=FULL) before this returns. Results are in the order of `mutations`.
    func commit(_ mutations: [StoreMutation]) async throws -> [MutationResult]

    /// `commit` for callers that are not async (an event loop): `completion` runs, on a thread of
    /// the store's choosing, once the batch holding `mutations` is durable, or with its error.
    func commit(_ mutations: [StoreMutation], completion: @escaping @Sendable (Result<[MutationResult], StoreError>) -> Void)

    /// A reader for the login path to use synchronously on one thread, or nil if this store has none
    /// (callers then use `user(_:)`).
    func makeLoginReader() throws -> (any LoginReader)?

    /// What a login reads before its prompt on a shared store: the user's record (as `user(_:)`,
    /// except that `recoveryCodesLeft` may be 0) and the stored setting `key` (the policy another
    /// daemon may have changed), in one round trip where the backend can.
    func loginRecord(_ name: String, setting key: String) async throws -> (record: UserRecord?, setting: String?)

    /// Whether other daemons change this store too (a shared database): what a daemon keeps in
    /// memory from it (the policy) is then read again for each login and control request.
    var isShared: Bool { get }

    /// Stores a new pending enrollment of factor `factor` (replacing any earlier pending one, of any
    /// name); the active factors stay in force.
    func beginEnrollment(user: String, factor: String, secret: SecretBytes, parameters: OTPParameters, atMillis: Int64) async throws

    /// The pending (not yet confirmed) enrollment, its secret opened; nil if none.
    func pendingEnrollment(user: String) async throws -> PendingEnrollment?

    /// Makes the pending enrollment an active factor (replacing an active one of the same name),
    /// with the given initial verify state (which records the step of the confirming code, so it
    /// cannot be used again). `recoveryCodes` replace the user's set; nil keeps it.
    func activateEnrollment(user: String, recoveryCodes: [RecoveryCodeHash]?, verify: VerifyState, atMillis: Int64) async throws

    /// Imports an active factor directly (admin provisioning, migration); replaces one of the same name.
    func importEnrollment(_ record: EnrollmentImportRecord) async throws

    /// Imports many active factors in one durable transaction (all or none).
    func importEnrollments(_ imports: [EnrollmentImportRecord]) async throws

    /// Replaces the user's recovery codes (the old set stops working). The user needs a factor (an
    /// OTP factor, a verified contact or a key): `StoreError.notEnrolled` otherwise.
    func replaceRecoveryCodes(user: String, codes: [RecoveryCodeHash]) async throws

    /// The user's unused recovery codes as (index, hash), opened.
    func recoveryCodes(user: String) async throws -> [(index: Int, hash: RecoveryCodeHash)]

    /// Removes one active OTP factor. Removing the last one also removes the recovery codes and any
    /// pending enrollment (no second factor is left to recover), unless the user has a verified
    /// contact or a key left (a factor too): then they stay. Contacts and keys are never removed
    /// here. Returns false if there was none of that name.
    func removeFactor(user: String, name: String) async throws -> Bool

    /// Removes every factor, the pending enrollment, the recovery codes, the contacts, any
    /// delivered code, the keys and the SSH keys. Returns false if there was none.
    func revoke(user: String) async throws -> Bool

    /// Clears failures and any lock.
    func unlock(user: String) async throws

    /// Sets the admin override for a user (creating the user row if needed).
    func setRequirement(user: String, _ requirement: RequirementOverride) async throws

    /// Sets the factor kinds a user may use, whatever host and service (nil: back to the policy's).
    func setFactorKinds(user: String, _ kinds: Set<FactorKind>?) async throws

    /// Sets the user's SSH key rule (creating the user row if needed), durably; nil: back to the
    /// policy's (host, then default).
    func setSSHKeyRule(user: String, _ rule: SSHKeyRule?) async throws

    /// Records, once, when a policy rule first applied to the user; returns the stored time.
    func markFirstRequired(user: String, atMillis: Int64) async throws -> Int64

    /// Users ordered by name, starting after `afterName`, at most `limit`. Secrets are not opened (nil);
    /// the contacts and keys are filled (one query for the page), the delivered code is not (nil).
    func listUsers(after afterName: String?, limit: Int) async throws -> [UserRecord]

    /// A stored setting (policy documents are JSON strings), or nil.
    func setting(_ key: String) async throws -> String?

    /// Stores a setting durably.
    func setSetting(_ key: String, value: String) async throws

    /// Audit records matching `query`, newest last.
    func audit(_ query: AuditQuery) async throws -> [AuditRecord]

    /// For each of `users`, the host of the user's most recent successful login ("verify",
    /// "success") that names one; users without such a login are absent. One query, whatever the
    /// number of users (an index of those records by user keeps it cheap with a large audit).
    func lastSuccessHosts(users: [String]) async throws -> [String: String]

    /// Deletes at most `limit` of the oldest audit records from before `beforeMillis`, in one short
    /// transaction; returns how many it deleted.
    func pruneAudit(before beforeMillis: Int64, limit: Int) async throws -> Int

    /// Closes the store; further calls fail.
    func close() async throws

    // MARK: Host registry (fleet mode: hosts identified by their TLS client certificates)

    /// Registers a host's certificate. Adding the same host and fingerprint again while it is in
    /// force changes nothing; a fingerprint registered to another host, or revoked (a revoked
    /// certificate never comes back), throws `StoreError.conflict`.
    func addHostCertificate(_ certificate: HostCertificate) async throws

    /// Revokes every certificate of host `name` not yet revoked; returns how many it revoked.
    func revokeHost(_ name: String, atMillis: Int64) async throws -> Int

    /// The certificates of `host` (nil: of every host), revoked ones included, ordered by host then
    /// by when they were added.
    func hostCertificates(host: String?) async throws -> [HostCertificate]

    /// The certificate of this fingerprint (64 lowercase hex digits), revoked or not; nil if unknown.
    func hostCertificate(fingerprint: String) async throws -> HostCertificate?

    // MARK: Moving a host in (schema v6; `twofoldd move-in`)

    /// Moves one user of a host's store in: in one durable transaction, under the user's lock,
    /// decides from what is stored (`MoveInPlan`) and writes it — a new user as the host had it
    /// (factors sealed under this store's key, replay and throttle state, overrides, recovery
    /// codes with their pepper); an already moved one only the later replay state and the codes
    /// used on the host since. A user enrolled differently is not touched (`.conflict`). With
    /// `dryRun` it only decides and writes nothing.
    func moveIn(_ user: MovedUser, dryRun: Bool) async throws -> MoveInOutcome

    /// Up to `limit` audit records with an id after `afterID`, oldest first (copying a log out).
    func auditRecords(after afterID: Int64, limit: Int) async throws -> [AuditRecord]

    /// The id, in host `host`'s own log, of the last of its audit records copied in; nil: none yet.
    func movedAuditMark(host: String) async throws -> Int64?

    /// Appends `records` (host `host`'s, ending with its record `through`) and moves the host's
    /// mark to `through`, in one durable transaction, if the mark is still `previous`; otherwise
    /// (another move of the host ran meanwhile) throws `StoreError.conflict` and writes nothing.
    func appendMovedAudit(_ records: [AuditRecord], host: String, through: Int64, previous: Int64?) async throws

    // MARK: Contacts and delivered codes (schema v7)

    /// Adds `contact` for `user` (creating the user row if needed). A waiting contact replaces the
    /// user's waiting one of its channel (a waiting contact of the address already verified changes
    /// nothing); a verified one (an admin's) replaces both of its channel. Adding an address
    /// already there again replaces it (its times). A delivered code sent to a replaced address is
    /// deleted with it. An address not in `ContactAddress.normalize`'s form is refused
    /// (`StoreError.conflict`, nothing written).
    func addContact(user: String, _ contact: Contact) async throws

    /// Removes the user's contacts of `channel` (only the one of this address when `value` is
    /// given), and a delivered code sent to a removed address; returns how many it removed.
    func removeContact(user: String, channel: DeliveryChannel, value: String?) async throws -> Int

    /// Adds many verified contacts in one durable transaction (all or none), as `addContact` each
    /// (the last of a user and channel wins). One not verified or not normalised refuses the whole
    /// import (`StoreError.conflict`, nothing written).
    func importContacts(_ contacts: [UserContact]) async throws

    /// Contacts of every user ordered by user, channel, address; users after `afterUser`, at most
    /// `limit` contacts (a user's contacts are never split across pages; the first user's come
    /// whole even beyond `limit`, so a page is empty only at the end).
    func listContacts(after afterUser: String?, limit: Int) async throws -> [UserContact]

    /// Stores `code` as the user's delivered code of its purpose, durably, replacing (invalidating)
    /// the previous one of that purpose. Creates the user row if needed.
    func storeDeliveredCode(user: String, _ code: DeliveredCodeRecord) async throws

    /// The user's delivered code of `purpose` (login codes also come with `user(_:)`); nil: none.
    func deliveredCode(user: String, purpose: DeliveryPurpose) async throws -> DeliveredCodeRecord?

    /// Confirms a waiting contact with its code: in one durable transaction, if the user's contact
    /// code is still `codeID` and was sent to that contact, and the contact is still the user's,
    /// deletes the code, marks the contact verified at `atMillis`, drops the user's other verified
    /// contact of that channel (and a code sent to it) and resets the user's failures. False
    /// (nothing written) if the code was replaced or used meanwhile, or the contact removed. The
    /// code's expiry is the caller's to check.
    func confirmContact(user: String, channel: DeliveryChannel, value: String, codeID: Int64, atMillis: Int64) async throws -> Bool

    /// Records a sent code for the send limits. Kept until pruned, whatever happens to the user
    /// (a revoke does not reset the limits).
    func recordSend(_ send: DeliverySend) async throws

    /// Codes sent since `sinceMillis` (inclusive): to `user`, to `destination` (any user), from `host`.
    func sendCounts(user: String, destination: String, host: String, since sinceMillis: Int64) async throws -> DeliverySendCounts

    /// Deletes records of sends from before `beforeMillis` and delivered codes that expired before
    /// it (of any purpose); returns how many rows it deleted.
    func pruneDeliveries(before beforeMillis: Int64) async throws -> Int

    // MARK: FIDO2 keys (schema v8)

    /// Adds `key` for `user` (creating the user row if needed), durably. Refused with
    /// `StoreError.conflict` (nothing written) when the user has a key of that name, or any user a
    /// key of that credential id (one key cannot belong to two accounts).
    func addKey(user: String, _ key: Fido2Credential) async throws

    /// Removes the user's key `name` (nil: all the user's keys); returns how many it removed.
    /// Removing the user's last factor (no OTP factor, verified contact or key left) also removes
    /// the recovery codes and any pending enrollment, as `removeFactor` does.
    func removeKey(user: String, name: String?) async throws -> Int

    /// Keys of every user ordered by user then name; users after `afterUser`, at most `limit` keys
    /// (a user's keys never split across pages, the first user's come whole even beyond `limit`).
    func listKeys(after afterUser: String?, limit: Int) async throws -> [UserKey]

    // MARK: SSH public keys (schema v9)
    // sshd checks them itself: they are no second factor of a PAM login (not in `UserRecord`, not
    // counted by `hasFactor` or `kinds`). Public data: not sealed, never logged. `revoke` removes them.

    /// Adds `key` for `user` (creating the user row if needed), durably. Refused with
    /// `StoreError.conflict` (nothing written) when the name is not a valid one or the key not one
    /// `SSHPublicKey(line:)` accepts, when the user has an SSH key of that name, or any user the
    /// same key (by its blob: one key cannot open two accounts).
    func addSSHKey(user: String, _ key: SSHKeyRecord) async throws

    /// Removes the user's SSH key `name` (nil: all the user's SSH keys); returns how many it removed.
    func removeSSHKey(user: String, name: String?) async throws -> Int

    /// The user's SSH keys ordered by name (what `authorized-keys` serves): one short read.
    func sshKeys(user: String) async throws -> [SSHKeyRecord]

    /// What sshd's `authorized-keys` serves for `user`: the user's SSH keys ordered by name and the
    /// user's own SSH key rule, in one statement (the hot read, on every SSH connection attempt).
    /// A user without SSH keys: no keys and no rule (there is nothing for a rule to serve).
    func authorizedSSHKeys(user: String) async throws -> UserSSHKeys

    /// SSH keys of every user ordered by user then name; users after `afterUser`, at most `limit`
    /// keys (a user's keys never split across pages, the first user's come whole even beyond `limit`).
    func listSSHKeys(after afterUser: String?, limit: Int) async throws -> [UserSSHKey]

    /// Adds many SSH keys in one durable transaction (all or none), as `addSSHKey` each; one that
    /// conflicts refuses the whole import (`StoreError.conflict`, nothing written).
    func importSSHKeys(_ keys: [UserSSHKey]) async throws

    // MARK: Key rotation (defaults in Rekey.swift for a backend without it)

    /// The pepper of recovery-code hashes, which the store keeps sealed like a secret (a rekey
    /// re-seals it), so that recovery codes outlive the key they were made under: random for a
    /// store created with it, the old derived one (`SealingKeys.recoveryPepper` of the database's
    /// first key) for a store that existed before. Nil: this store keeps none, and the daemon
    /// derives it from the sealing key as before (then it cannot rotate keys).
    func recoveryPepper() async throws -> SecretBytes?

    /// How many sealed values the store holds, by the key they are under (`SealedValueCount`):
    /// every sealed column, every row, used recovery codes and the pepper included; key checks not.
    func sealedValueCounts() async throws -> [SealedValueCount]

    /// One step of a rekey: examines at most `limit` sealed values after `cursor` (nil: from the
    /// start), in the store's own order, and re-seals under the sealing key each one that is not,
    /// in one short durable transaction. A value is written back only if it is still the blob that
    /// was read (a conditional update): one changed meanwhile (re-enrolled, removed) is left and
    /// counted in `changed`. One that does not open with the keyring is left as it is
    /// (`unreadable`). `next` is where the following step starts; nil when the whole store was
    /// examined. The cursor is the store's own, opaque to callers. Safe to run again from the start
    /// at any time: values already under the sealing key are only counted.
    func resealSecrets(after cursor: String?, limit: Int) async throws -> ResealBatch

    // MARK: Restore (`twofoldd restore`, on a restored store no daemon serves; default in Restore.swift)

    /// Applies the restore rules (`RestoreRules`) in one durable transaction: every TOTP factor's
    /// watermark raised to the step of `nowMillis`, every HOTP counter moved past the look-ahead
    /// window (`RestoreReplay`), never lowered; the users with unused recovery codes counted and,
    /// with `invalidateRecoveryCodes`, those codes marked used. Running it again raises nothing
    /// already raised but moves HOTP counters on again.
    func secureRestoredStore(_ rules: RestoreRules) async throws -> RestoreReplayResult
}

