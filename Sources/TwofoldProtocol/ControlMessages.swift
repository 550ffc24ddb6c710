/// Control requests that `twofoldctl` (and the tests) send in a `REQUEST` frame as JSON.
/// The daemon authorizes each one by the peer's credentials: user requests act on the caller's
/// own account (root may name any user); admin requests need root or the admin group.
public enum ControlRequest: Codable, Sendable, Equatable {
    /// Liveness check; any peer.
    case ping

    // MARK: User requests (the caller's own account; an admin may name another user)

    /// Issue a new secret for factor `name`, pending until confirmed. A user who has a factor needs
    /// `currentCode` (a code of any factor) unless the caller is an admin. `name` nil: "app" for a
    /// first factor, else the next free "app-N"; an existing name is replaced once confirmed.
    case enrollBegin(user: String?, currentCode: String?, name: String? = nil)
    /// Check code(s) from the app against the pending secret (policy may ask for two consecutive
    /// codes). On success returns fresh recovery codes for a first factor; an empty list when the
    /// user already has a factor and unused recovery codes, whose set is then kept (it is not
    /// voided by adding a factor). Nothing changes for logins until `enrollActivate`.
    case enrollVerify(user: String?, codes: [String])
    /// The user confirmed the recovery codes are saved (or none were issued): the verified
    /// enrollment becomes active.
    case enrollActivate(user: String?)
    /// Enrollment, requirement and lock state. `user` nil: the caller.
    case status(user: String?)
    /// A fresh set of recovery codes after a current code; the old set stops working.
    case regenerateRecoveryCodes(user: String?, code: String)
    /// Turn 2FA off (every factor) after a current code, where policy allows it.
    case disable(user: String?, code: String)
    /// The user's factors (`ControlResponse.factors`).
    case listFactors(user: String?)
    /// Remove factor `name` after a current code of any factor (an admin needs none).
    case removeFactor(user: String?, name: String, code: String?)

    // MARK: Admin requests (root or the admin group)

    /// One page of users, by name.
    case listUsers(after: String?, limit: Int)
    /// One user's full state.
    case showUser(user: String)
    /// Per-user override: required, exempt, or back to policy.
    case setRequirement(user: String, requirement: RequirementSetting)
    /// Per-user factor kinds (`totp`, `hotp`, `recovery`), the first level of the kinds chain; nil: back to policy.
    case setFactorKinds(user: String, kinds: [String]?)
    /// Remove every factor and the recovery codes; the user must enroll again.
    case revoke(user: String)
    /// Clear failures and any lock.
    case unlock(user: String)
    /// The policy in force.
    case policyShow
    /// Replace the policy (the CLI reads, edits and sends it whole).
    case policySet(PolicyDocument)
    /// Provision an active factor (`name`, default "imported") from an otpauth URI, a
    /// google-authenticator file or a users.oath line.
    case importEnrollment(user: String, source: ImportSource, name: String? = nil)
    /// Many imports at once (at most `ControlLimits.maxImportsPerRequest`), stored in one
    /// transaction: each item succeeds or fails on its own (`ControlResponse.importedMany`).
    case importEnrollments([EnrollmentImport])
    /// Audit records, newest last; `host`: only the records of that host, `action`: of that action
    /// (both absent from older clients).
    case audit(user: String?, sinceMillis: Int64?, outcome: String?, limit: Int, host: String? = nil, action: String? = nil)
    /// The daemon's version and setup (files, key, admin group) for `twofoldctl doctor`.
    case serverInfo
    /// Who a policy requires and what each of them gets at the next login, over every user the
    /// system can list: `proposed` nil for the policy in force (`doctor`), else the policy a
    /// `policy set` would store (`--dry-run`, and the lock-out check before a real change).
    case policyImpact(proposed: PolicyDocument?)
    /// Which rule of the chain decides for `user` (on `service`, on `host`; nil host: the daemon's
    /// own), and what the user gets at the next login.
    case policyExplain(user: String, service: String?, host: String?)
    /// One step of a rekey (`RekeyReport`): re-seal under the daemon's sealing key, in short
    /// transactions, for about a second, the sealed values after `cursor` (nil: from the start);
    /// the answer's cursor continues it, nil once the whole store was done. `check`: change nothing,
    /// only count the sealed values by key.
    case rekey(check: Bool, cursor: String?)
    /// Through a relay: opens an admin session for the caller on the relay's host with a current code
    /// of theirs (the caller in the policy's admins, the host in its admin hosts).
    case adminSession(code: String)

    // MARK: Emergency codes (a relay's own, answered by the relay; its root only)

    /// `count` new single-use emergency codes for each account, for logins on this host while no
    /// server of the tier is reachable (`breakGlass`, with the codes, shown once).
    case breakGlassIssue(accounts: [String], count: Int)
    /// Unused emergency codes per account (`breakGlass`, without codes).
    case breakGlassList
    /// Removes the unused emergency codes of `account` (nil: every account); `breakGlass` lists what is left.
    case breakGlassClear(account: String?)
    /// A relay reports the events of its emergency codes for the tier's audit (the host is the one
    /// of the relay's certificate, whatever the entries say).
    case relayAudit([AuditEntry])

    // MARK: Host registry (admin; fleet mode: a host is known by its TLS client certificate)

    /// Register a certificate of host `name`: exactly one of the certificate (PEM text; the daemon
    /// checks that its SAN names the host and that it has not expired, and takes its fingerprint and
    /// expiry from it) or its SHA-256 `fingerprint` (64 hex digits, optionally colon-separated, with
    /// `notAfterMillis` if known). Answers `hosts` with the certificate as stored.
    case hostAdd(name: String, certificatePEM: String?, fingerprint: String?, notAfterMillis: Int64?)
    /// Every registered certificate, revoked ones included (`hosts`).
    case hostList
    /// Revoke every certificate of host `name`; answers `hosts` with all of the host's certificates.
    case hostRevoke(name: String)
    /// The daemon's metrics in Prometheus's text format (`ControlResponse.metricsText`).
    case metrics

    // MARK: Contacts and delivered codes (the caller's own; an admin may name another user)

    /// Add an email address or a phone number (`channel`: `email` or `sms`; E.164 for a phone) and
    /// send it a code to confirm it (`contactCodeSent`); it is used only once confirmed. A user who
    /// has a factor gives a current code of one (`code`) unless the caller is an admin.
    case contactAdd(user: String?, channel: String, value: String, code: String?)
    /// Confirm the contact waiting for its code with the code it received.
    case contactVerify(user: String?, code: String)
    /// Remove the user's contact(s) of `channel` (only `value` when given). A current code as for
    /// adding, unless an admin asks.
    case contactRemove(user: String?, channel: String, value: String?, code: String?)
    /// The user's contacts, masked (`contacts`); `user` nil and `all`: every user's (admin).
    case contactList(user: String?, all: Bool)
    /// Admin: add verified contacts in bulk (`importedMany`, one outcome per item, in order).
    case contactImport([ContactImport])
    /// Send a login code to the user's verified contact of `channel` (nil: the first allowed), to
    /// use as the current code of a following request of twofoldctl on this host (`contactCodeSent`).
    case codeSend(user: String?, channel: String?)

    // MARK: FIDO2 security keys (the caller's own; an admin may name another user)

    /// Start registering a key (`keyChallenge`): the daemon's single-use challenge, valid on this
    /// connection only and for `KeyChallenge.validMillis`. A user who has a factor gives a current
    /// code of one (`code`) unless the caller is an admin. `name`: the key's name (nil: "key", "key-2", …).
    case keyBegin(user: String?, name: String?, code: String?)
    /// Finish it with what the key made over that challenge (`keys`, the new key alone).
    case keyFinish(KeyRegistration)
    /// The user's keys (`keys`); `user` nil and `all`: every user's (admin).
    case keyList(user: String?, all: Bool)
    /// Remove the user's key `name` (nil: all of them; admins only). A current code as for adding,
    /// unless an admin asks.
    case keyRemove(user: String?, name: String?, code: String?)

    // MARK: SSH public keys (the caller's own; an admin may name another user)

    /// Register an SSH public key (`line`: one line of a .pub file) under `name` (nil: the key's
    /// type, "sk-ed25519", "sk-ecdsa", ... made unique). A user who has a factor gives a current code
    /// (`code`) unless the caller is an admin (`sshKeys`, the new key alone).
    case sshKeyAdd(user: String?, name: String?, line: String, code: String?)
    /// The user's SSH keys (`sshKeys`); `user` nil and `all`: every user's (admin).
    case sshKeyList(user: String?, all: Bool)
    /// Remove the user's SSH key `name` (nil: all of them; admins only); a current code as for adding.
    case sshKeyRemove(user: String?, name: String?, code: String?)
    /// Admin: add SSH keys in bulk (`importedMany`, one outcome per item, in order).
    case sshKeyImport([SSHKeyImport])
    /// sshd's AuthorizedKeysCommand: the lines to serve for `user` (`authorizedKeys`), with the
    /// options the policy asks for. Allowed to root and to `authorized_keys_user`, which may ask
    /// nothing else.
    case authorizedKeys(user: String)
    /// Admin: the user's own SSH key rule (`sk`, `any`, with `,verify-required`), the first level
    /// of the SSH key chain (user › host › default); nil: back to the host's or the policy's.
    case setSSHKeyRule(user: String, rule: String?)

    // MARK: Backup (admin; a single host's SQLite store; the three steps on one connection)

    /// Take a consistent copy of the store while logins go on, held for this connection until it
    /// ends (`backup`: its id, size, SHA-256 and manifest). At most one per connection.
    case backupBegin
    /// The bytes of this connection's backup `id` from `offset` (`backupChunk`): at most
    /// `BackupLimits.chunkBytes`, none at the end.
    case backupRead(id: String, offset: Int64)
    /// The client has the whole backup, safely written: the daemon drops its copy and audits the
    /// backup (`ok`). A connection that closes first drops it too, audited as abandoned.
    case backupEnd(id: String)
}

/// One contact of a bulk contact import.
public struct ContactImport: Codable, Sendable, Equatable {
    public var user: String
    /// `email` or `sms`.
    public var channel: String
    public var value: String

    public init(user: String, channel: String, value: String) {
        self.user = user
        self.channel = channel
        self.value = value
    }
}

/// One contact as listings show it: masked.
public struct ContactInfo: Codable, Sendable, Equatable {
    public var user: String
    /// `email` or `sms`.
    public var channel: String
    /// `a***@example.com`, `+49 *** *** 12`.
    public var masked: String
    public var verified: Bool
    public var addedMillis: Int64
    public var verifiedMillis: Int64?
    /// For a code just sent: how long it is valid, in seconds.
    public var codeValidSeconds: Int?

    public init(user: String, channel: String, masked: String, verified: Bool, addedMillis: Int64, verifiedMillis: Int64? = nil,
                codeValidSeconds: Int? = nil) {
        self.user = user
        self.channel = channel
        self.masked = masked
        self.verified = verified
        self.addedMillis = addedMillis
        self.verifiedMillis = verifiedMillis
        self.codeValidSeconds = codeValidSeconds
    }
}

extension ControlRequest {
    /// The request's name: its key in the JSON document.
    public var name: String {
        switch self {
        case .ping: "ping"
        case .enrollBegin: "enrollBegin"
        case .enrollVerify: "enrollVerify"
        case .enrollActivate: "enrollActivate"
        case .status: "status"
        case .regenerateRecoveryCodes: "regenerateRecoveryCodes"
        case .disable: "disable"
        case .listFactors: "listFactors"
        case .removeFactor: "removeFactor"
        case .listUsers: "listUsers"
        case .showUser: "showUser"
        case .setRequirement: "setRequirement"
        case .setFactorKinds: "setFactorKinds"
        case .revoke: "revoke"
        case .unlock: "unlock"
        case .policyShow: "policyShow"
        case .policySet: "policySet"
        case .importEnrollment: "importEnrollment"
        case .importEnrollments: "importEnrollments"
        case .audit: "audit"
        case .serverInfo: "serverInfo"
        case .policyImpact: "policyImpact"
        case .policyExplain: "policyExplain"
        case .rekey: "rekey"
        case .metrics: "metrics"
        case .adminSession: "adminSession"
        case .breakGlassIssue: "breakGlassIssue"
        case .breakGlassList: "breakGlassList"
        case .breakGlassClear: "breakGlassClear"
        case .relayAudit: "relayAudit"
        case .hostAdd: "hostAdd"
        case .hostList: "hostList"
        case .hostRevoke: "hostRevoke"
        case .contactAdd: "contactAdd"
        case .contactVerify: "contactVerify"
        case .contactRemove: "contactRemove"
        case .contactList: "contactList"
        case .contactImport: "contactImport"
        case .codeSend: "codeSend"
        case .keyBegin: "keyBegin"
        case .keyFinish: "keyFinish"
        case .keyList: "keyList"
        case .keyRemove: "keyRemove"
        case .sshKeyAdd: "sshKeyAdd"
        case .sshKeyList: "sshKeyList"
        case .sshKeyRemove: "sshKeyRemove"
        case .sshKeyImport: "sshKeyImport"
        case .authorizedKeys: "authorizedKeys"
        case .setSSHKeyRule: "setSSHKeyRule"
        case .backupBegin: "backupBegin"
        case .backupRead: "backupRead"
        case .backupEnd: "backupEnd"
        }
    }
}

/// An admin's per-user override.
public enum RequirementSetting: String, Codable, Sendable, Equatable, CaseIterable {
    case required, exempt, policy
}

/// Bounds of control requests.
public enum ControlLimits {
    /// Items of one `importEnrollments` request (the 64 KiB frame holds about 250 URIs anyway).
    public static let maxImportsPerRequest = 1_000
}

/// One user of a bulk import.
public struct EnrollmentImport: Codable, Sendable, Equatable {
    public var user: String
    public var source: ImportSource
    /// The factor's name; nil: "imported".
    public var name: String?

    public init(user: String, source: ImportSource, name: String? = nil) {
        self.user = user
        self.source = source
        self.name = name
    }
}

/// What became of one item of a bulk import: imported (with its recovery codes) or refused (with why).
public struct ImportOutcome: Codable, Sendable, Equatable {
    public var user: String
    /// Recovery codes the import brought; nil when the item was refused.
    public var recoveryCodes: Int?
    /// Why the item was refused; nil when it was imported. Never holds the secret.
    public var error: String?

    public init(user: String, recoveryCodes: Int? = nil, error: String? = nil) {
        self.user = user
        self.recoveryCodes = recoveryCodes
        self.error = error
    }
}

/// What an import reads. The daemon parses it (the CLI only reads the file the admin names).
public enum ImportSource: Codable, Sendable, Equatable {
    /// An otpauth:// URI.
    case uri(String)
    /// The contents of a `~/.google_authenticator` file: its secret, options and scratch codes.
    case googleAuthenticator(String)
    /// One line of pam_oath's users.oath (`HOTP/T30/6 user - hexsecret ...`).
    case usersOath(String)
}

/// Who must use a second factor, and how; `twofoldctl policy show|set`.
public struct PolicyDocument: Codable, Sendable, Equatable {
    /// The default rule: `nobody`, `everyone`, or `groups` (members of `requiredGroups`).
    public var require: String
    public var requiredGroups: [String]
    /// Per PAM service: "required" or "optional" (overrides the default rule for that service).
    public var services: [String: String]
    /// Per host: "required" or "optional" (overrides the service and default rules on that host).
    /// The chain, first match wins: user override › host › service › default.
    public var hosts: [String: String]
    /// The factor kinds a login may use (`totp`, `hotp`, `recovery`, `email`, `sms`), by the same
    /// chain: a host's list › a service's list › the default list. Email and sms are in none by
    /// default: an admin turns them on.
    public var factorKinds: [String]
    public var serviceFactorKinds: [String: [String]]
    public var hostFactorKinds: [String: [String]]
    /// What a required user who has not enrolled gets at login: `enroll` (enroll at login), `deny`, or `grace`.
    public var unenrolled: String
    /// Grace period: days from when the rule first applied to the user ...
    public var graceDays: Int?
    /// ... and/or a fixed deadline (ms since the epoch); the earlier of the two ends the grace.
    public var graceDeadlineMillis: Int64?
    /// Whether users may turn 2FA on themselves when not required.
    public var selfEnrollment: Bool
    /// Whether users who are not required may turn 2FA off themselves.
    public var allowDisable: Bool
    /// Codes asked at enrollment: 1, or 2 consecutive codes.
    public var enrollmentCodes: Int
    /// New enrollments.
    public var digits: Int
    public var algorithm: String
    public var period: Int
    /// Checking.
    public var window: Int
    public var maxDrift: Int
    /// Throttling.
    public var maxFailures: Int
    public var throttleDelayMillis: Int64
    public var throttleMaxDelayMillis: Int64
    public var lockSeconds: Int
    /// Fleet (README "A fleet"): the users who are admins through relays (a current code of theirs
    /// opens an admin session on a host); the host patterns (`bastion-*`) admin requests through
    /// relays may come from, and those enrolling is open through (both: none by default, i.e. only
    /// on the servers); how long an admin session through a relay lasts.
    public var admins: [String]
    public var adminHosts: [String]
    public var enrollHosts: [String]
    public var adminSessionMinutes: Int
    /// Digits of a delivered code (email, sms): 6 to 8.
    public var deliveredCodeDigits: Int
    /// FIDO2 keys: logins with a key must verify the user (a PIN or built-in UV), and registration asks for it too.
    public var fido2UserVerification: Bool
    /// FIDO2 keys: only models (AAGUIDs, UUID text) on this list may be registered, with their
    /// attestation verified against the daemon's `fido2_attestation_ca`; empty: any key.
    public var fido2AAGUIDs: [String]
    /// SSH keys: `sk` (only hardware-backed sk- keys are registered and served) or `any`.
    public var sshKeyTypes: String
    /// SSH keys: serve every key with `verify-required` (sshd then wants a PIN or built-in UV).
    public var sshVerifyRequired: Bool
    /// SSH keys per host (a name or pattern): the rule in its text form (`sk`, `any`, either with
    /// `,verify-required`), in place of the two fields above on that host. The chain: the user's
    /// own rule › the host's › the default.
    public var hostSSHKeys: [String: String]

    public init(require: String = "nobody", requiredGroups: [String] = [], services: [String: String] = [:],
                hosts: [String: String] = [:], factorKinds: [String] = ["totp", "hotp", "recovery"],
                serviceFactorKinds: [String: [String]] = [:], hostFactorKinds: [String: [String]] = [:], unenrolled: String = "deny", graceDays: Int? = nil, graceDeadlineMillis: Int64? = nil,
                selfEnrollment: Bool = true, allowDisable: Bool = true, enrollmentCodes: Int = 1,
                digits: Int = 6, algorithm: String = "SHA1", period: Int = 30, window: Int = 1, maxDrift: Int = 3,
                maxFailures: Int = 10, throttleDelayMillis: Int64 = 1000, throttleMaxDelayMillis: Int64 = 30_000, lockSeconds: Int = 900,
                admins: [String] = [], adminHosts: [String] = [], enrollHosts: [String] = [], adminSessionMinutes: Int = 10,
                deliveredCodeDigits: Int = 6, fido2UserVerification: Bool = false, fido2AAGUIDs: [String] = [],
                sshKeyTypes: String = "sk", sshVerifyRequired: Bool = false, hostSSHKeys: [String: String] = [:]) {
        self.sshKeyTypes = sshKeyTypes
        self.hostSSHKeys = hostSSHKeys
        self.sshVerifyRequired = sshVerifyRequired
        self.deliveredCodeDigits = deliveredCodeDigits
        self.fido2UserVerification = fido2UserVerification
        self.fido2AAGUIDs = fido2AAGUIDs
        self.admins = admins
        self.adminHosts = adminHosts
        self.enrollHosts = enrollHosts
        self.adminSessionMinutes = adminSessionMinutes
        self.require = require
        self.requiredGroups = requiredGroups
        self.services = services
        self.hosts = hosts
        self.factorKinds = factorKinds
        self.serviceFactorKinds = serviceFactorKinds
        self.hostFactorKinds = hostFactorKinds
        self.unenrolled = unenrolled
        self.graceDays = graceDays
        self.graceDeadlineMillis = graceDeadlineMillis
        self.selfEnrollment = selfEnrollment
        self.allowDisable = allowDisable
        self.enrollmentCodes = enrollmentCodes
        self.digits = digits
        self.algorithm = algorithm
        self.period = period
        self.window = window
        self.maxDrift = maxDrift
        self.maxFailures = maxFailures
        self.throttleDelayMillis = throttleDelayMillis
        self.throttleMaxDelayMillis = throttleMaxDelayMillis
        self.lockSeconds = lockSeconds
    }
}

extension PolicyDocument {
    private enum CodingKeys: String, CodingKey {
        case require, requiredGroups, services, hosts, factorKinds, serviceFactorKinds, hostFactorKinds, unenrolled, graceDays, graceDeadlineMillis, selfEnrollment, allowDisable
        case enrollmentCodes, digits, algorithm, period, window, maxDrift, maxFailures, throttleDelayMillis, throttleMaxDelayMillis
        case lockSeconds, admins, adminHosts, enrollHosts, adminSessionMinutes, deliveredCodeDigits, fido2UserVerification, fido2AAGUIDs
        case sshKeyTypes, sshVerifyRequired, hostSSHKeys
    }

    /// Decodes a document stored by an earlier release too: a field added since (`hosts` and the
    /// factor kinds) takes its default when it is absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        require = try c.decode(String.self, forKey: .require)
        requiredGroups = try c.decode([String].self, forKey: .requiredGroups)
        services = try c.decode([String: String].self, forKey: .services)
        hosts = try c.decodeIfPresent([String: String].self, forKey: .hosts) ?? [:]
        factorKinds = try c.decodeIfPresent([String].self, forKey: .factorKinds) ?? factorKinds
        serviceFactorKinds = try c.decodeIfPresent([String: [String]].self, forKey: .serviceFactorKinds) ?? [:]
        hostFactorKinds = try c.decodeIfPresent([String: [String]].self, forKey: .hostFactorKinds) ?? [:]
        unenrolled = try c.decode(String.self, forKey: .unenrolled)
        graceDays = try c.decodeIfPresent(Int.self, forKey: .graceDays)
        graceDeadlineMillis = try c.decodeIfPresent(Int64.self, forKey: .graceDeadlineMillis)
        selfEnrollment = try c.decode(Bool.self, forKey: .selfEnrollment)
        allowDisable = try c.decode(Bool.self, forKey: .allowDisable)
        enrollmentCodes = try c.decode(Int.self, forKey: .enrollmentCodes)
        digits = try c.decode(Int.self, forKey: .digits)
        algorithm = try c.decode(String.self, forKey: .algorithm)
        period = try c.decode(Int.self, forKey: .period)
        window = try c.decode(Int.self, forKey: .window)
        maxDrift = try c.decode(Int.self, forKey: .maxDrift)
        maxFailures = try c.decode(Int.self, forKey: .maxFailures)
        throttleDelayMillis = try c.decode(Int64.self, forKey: .throttleDelayMillis)
        throttleMaxDelayMillis = try c.decode(Int64.self, forKey: .throttleMaxDelayMillis)
        lockSeconds = try c.decode(Int.self, forKey: .lockSeconds)
        admins = try c.decodeIfPresent([String].self, forKey: .admins) ?? []
        adminHosts = try c.decodeIfPresent([String].self, forKey: .adminHosts) ?? []
        enrollHosts = try c.decodeIfPresent([String].self, forKey: .enrollHosts) ?? []
        adminSessionMinutes = try c.decodeIfPresent(Int.self, forKey: .adminSessionMinutes) ?? 10
        deliveredCodeDigits = try c.decodeIfPresent(Int.self, forKey: .deliveredCodeDigits) ?? 6
        fido2UserVerification = try c.decodeIfPresent(Bool.self, forKey: .fido2UserVerification) ?? false
        fido2AAGUIDs = try c.decodeIfPresent([String].self, forKey: .fido2AAGUIDs) ?? []
        sshKeyTypes = try c.decodeIfPresent(String.self, forKey: .sshKeyTypes) ?? "sk"
        sshVerifyRequired = try c.decodeIfPresent(Bool.self, forKey: .sshVerifyRequired) ?? false
        hostSSHKeys = try c.decodeIfPresent([String: String].self, forKey: .hostSSHKeys) ?? [:]
    }

    /// The names of the fields (as in the JSON) whose values differ, sorted: for the audit record.
    public static func changedFields(from old: PolicyDocument, to new: PolicyDocument) -> [String] {
        func fields(_ document: PolicyDocument) -> [String: String] {
            var result: [String: String] = [:]
            for child in Mirror(reflecting: document).children {
                if let label = child.label { result[label] = String(describing: child.value) }
            }
            return result
        }
        let before = fields(old), after = fields(new)
        return after.keys.filter { before[$0] != after[$0] }.sorted()
    }
}

/// The daemon's answer to a `ControlRequest`.
public enum ControlResponse: Codable, Sendable, Equatable {
    case ok
    /// `code` is one of `ControlErrorCode`; `message` is for people and never holds a secret.
    case error(code: ControlErrorCode, message: String)
    /// A fresh secret to show the enrolling user once.
    case enrollment(EnrollmentOffer)
    /// Recovery codes to show once.
    case recoveryCodes([String])
    case status(UserStatus)
    case users([UserStatus])
    case audit([AuditEntry])
    case policy(PolicyDocument)
    /// An import succeeded; how many recovery codes it brought (scratch codes of a google-authenticator file).
    case imported(recoveryCodes: Int)
    /// The outcome of each item of a bulk import, in request order.
    case importedMany([ImportOutcome])
    case serverInfo(ServerInfo)
    case policyImpact(PolicyImpact)
    case policyExplanation(PolicyExplanation)
    case factors([FactorInfo])
    case rekey(RekeyReport)
    /// An admin session through a relay is open until then (ms since the epoch).
    case adminSession(untilMillis: Int64)
    /// Emergency codes of a relay's host: new ones (with `code`), or what is left per account.
    case breakGlass([BreakGlassEntry])
    /// Host certificates, one entry per certificate, by host then by when it was added.
    case hosts([HostInfo])
    /// The exposition text of the daemon's metrics (Prometheus text format 0.0.4), as is.
    case metricsText(String)
    /// Contacts, masked.
    case contacts([ContactInfo])
    /// A code went to this contact (masked), valid `codeValidSeconds`.
    case contactCodeSent(ContactInfo)
    /// What a key must sign to be registered (`keyBegin`).
    case keyChallenge(KeyChallenge)
    /// Security keys.
    case keys([KeyInfo])
    /// SSH public keys.
    case sshKeys([SSHKeyInfo])
    /// The authorized_keys lines for sshd (`authorizedKeys`); `cached` when a relay answered from
    /// its cache because no server was reachable.
    case authorizedKeys(lines: [String], cached: Bool)
    /// A backup taken for this connection (`backupBegin`).
    case backup(BackupInfo)
    /// Bytes of it (`backupRead`).
    case backupChunk(BackupChunk)
}

/// Emergency codes of one account on a relay's host.
public struct BreakGlassEntry: Codable, Sendable, Equatable {
    public var account: String
    /// A new code, shown once (nil in a listing).
    public var code: String?
    /// Unused codes of the account.
    public var unused: Int

    public init(account: String, code: String? = nil, unused: Int) {
        self.account = account
        self.code = code
        self.unused = unused
    }
}

/// One certificate of a registered host (`twofoldctl host list`).
public struct HostInfo: Codable, Sendable, Equatable {
    public var name: String
    /// SHA-256 of the certificate's DER, 64 lowercase hex digits.
    public var fingerprint: String
    public var notAfterMillis: Int64?
    public var addedMillis: Int64
    /// nil: in force.
    public var revokedMillis: Int64?

    public init(name: String, fingerprint: String, notAfterMillis: Int64?, addedMillis: Int64, revokedMillis: Int64?) {
        self.name = name
        self.fingerprint = fingerprint
        self.notAfterMillis = notAfterMillis
        self.addedMillis = addedMillis
        self.revokedMillis = revokedMillis
    }
}

/// The policy chain for one user, service and host (`twofoldctl policy explain`): each level in
/// the order it is consulted, the one that decided, and what the next login gives.
public struct PolicyExplanation: Codable, Sendable, Equatable {
    /// One level of the chain: `user` (the admin's override), `host`, `service`, `default`.
    public struct Step: Codable, Sendable, Equatable {
        public var level: String
        /// The rule found at that level, or nil when it has none for this login.
        public var rule: String?
        /// Whether this level decided (the first with a rule; `default` always has one).
        public var decided: Bool

        public init(level: String, rule: String?, decided: Bool) {
            self.level = level
            self.rule = rule
            self.decided = decided
        }
    }

    public var user: String
    public var service: String?
    public var host: String
    public var required: Bool
    /// The level that decided, and its rule in words (e.g. "service sshd: required").
    public var decidedBy: String
    public var because: String
    public var chain: [Step]
    /// "none", "pending" or "active".
    public var enrollment: String
    public var atLogin: PolicyImpact.AtLogin
    public var graceUntilMillis: Int64?
    /// The factor kinds this login may use, and the rule that gave them (same chain).
    public var factorKinds: [String]
    public var factorKindsBecause: String
    /// The SSH key rule sshd is served by on this host (`sk`, `any`, with `,verify-required`), and
    /// the level that gave it (same chain, without services: user › host › default); nil from
    /// an older daemon.
    public var sshKeys: String?
    public var sshKeysBecause: String?

    public init(user: String, service: String?, host: String, required: Bool, decidedBy: String, because: String, chain: [Step],
                enrollment: String, atLogin: PolicyImpact.AtLogin, graceUntilMillis: Int64?, factorKinds: [String] = [],
                factorKindsBecause: String = "", sshKeys: String? = nil, sshKeysBecause: String? = nil) {
        self.sshKeys = sshKeys
        self.sshKeysBecause = sshKeysBecause
        self.user = user
        self.service = service
        self.host = host
        self.required = required
        self.decidedBy = decidedBy
        self.because = because
        self.chain = chain
        self.enrollment = enrollment
        self.atLogin = atLogin
        self.graceUntilMillis = graceUntilMillis
        self.factorKinds = factorKinds
        self.factorKindsBecause = factorKindsBecause
    }
}

/// One factor of a user as `twofoldctl factors` lists it (never its secret).
public struct FactorInfo: Codable, Sendable, Equatable {
    public var name: String
    /// "totp", "hotp" or "recovery".
    public var kind: String
    /// e.g. "SHA1, 6 digits, 30 s"; for the recovery set, how many codes are left.
    public var detail: String
    public var addedAtMillis: Int64?
    public var lastUsedMillis: Int64?
    /// The recovery set only: how many codes are left.
    public var codesLeft: Int?

    public init(name: String, kind: String, detail: String, addedAtMillis: Int64?, lastUsedMillis: Int64?, codesLeft: Int? = nil) {
        self.name = name
        self.kind = kind
        self.detail = detail
        self.addedAtMillis = addedAtMillis
        self.lastUsedMillis = lastUsedMillis
        self.codesLeft = codesLeft
    }
}

/// What `twofoldctl doctor` learns from the daemon about its own setup (admin request).
public struct ServerInfo: Codable, Sendable, Equatable {
    public var version: String
    /// The config file read at start or at the last reload (nil: built-in defaults, no file).
    public var configFile: String?
    public var database: String
    /// "file" (`keyFile`) or "credential" (systemd's LoadCredential).
    public var keySource: String
    public var keyFile: String?
    /// Permission bits and owner of the key file as the daemon sees them (nil with a credential).
    public var keyFileMode: UInt32?
    public var keyFileOwnerUID: UInt32?
    /// The uid the daemon runs as (a DynamicUser one under systemd).
    public var daemonUID: UInt32
    public var adminGroup: String?
    /// The id of the key new secrets are sealed with, and of the previous (open-only) keys the daemon
    /// holds (nil from a daemon before key rotation).
    public var sealingKeyID: String?
    public var previousKeyIDs: [String]?
    /// A server's or a relay's part in a fleet (nil: a single host, or a daemon from before fleets).
    public var fleet: FleetInfo?
    /// Delivered codes: what the policy allows and whether the delivery service answers (nil: a
    /// daemon from before delivered codes).
    public var delivery: DeliveryInfo?
    /// FIDO2 keys as the daemon is set up for them (nil: a daemon from before keys).
    public var fido2: Fido2Info?
    /// SSH keys served to sshd (nil: a daemon from before SSH keys).
    public var sshKeys: SSHKeysInfo?

    public init(version: String, configFile: String?, database: String, keySource: String, keyFile: String?,
                keyFileMode: UInt32?, keyFileOwnerUID: UInt32?, daemonUID: UInt32, adminGroup: String?,
                sealingKeyID: String? = nil, previousKeyIDs: [String]? = nil, fleet: FleetInfo? = nil, delivery: DeliveryInfo? = nil,
                fido2: Fido2Info? = nil, sshKeys: SSHKeysInfo? = nil) {
        self.fido2 = fido2
        self.sshKeys = sshKeys
        self.fleet = fleet
        self.delivery = delivery
        self.version = version
        self.configFile = configFile
        self.database = database
        self.keySource = keySource
        self.keyFile = keyFile
        self.keyFileMode = keyFileMode
        self.keyFileOwnerUID = keyFileOwnerUID
        self.daemonUID = daemonUID
        self.adminGroup = adminGroup
        self.sealingKeyID = sealingKeyID
        self.previousKeyIDs = previousKeyIDs
    }
}

/// Delivered codes as the daemon sees them, for `twofoldctl doctor`.
public struct DeliveryInfo: Codable, Sendable, Equatable {
    /// The channels (`email`, `sms`) the policy allows anywhere (by default, for a service or a host).
    public var allowedChannels: [String]
    /// The delivery service's socket (`delivery_socket`).
    public var socket: String
    /// Why the daemon cannot connect to it; nil: it connects (probed only when a channel is allowed).
    public var error: String?
    /// Users with a verified contact (nil: not counted).
    public var usersWithContacts: Int?

    public init(allowedChannels: [String], socket: String, error: String? = nil, usersWithContacts: Int? = nil) {
        self.allowedChannels = allowedChannels
        self.socket = socket
        self.error = error
        self.usersWithContacts = usersWithContacts
    }
}

/// A daemon's part in a fleet, for `twofoldctl doctor`. A relay answers `serverInfo` itself (to its
/// host's root) with this and no store or key; a server adds it to its own.
public struct FleetInfo: Codable, Sendable, Equatable {
    /// "server" or "relay".
    public var role: String
    /// server: where relays connect.
    public var listen: String?
    /// relay: each server, tried just now.
    public var servers: [TierServerState]?
    /// This daemon's certificate (a relay's: its host's identity).
    public var certificateFingerprint: String?
    public var certificateNotAfterMillis: Int64?
    /// relay: unused emergency codes per account.
    public var breakGlass: [BreakGlassEntry]?

    public init(role: String, listen: String? = nil, servers: [TierServerState]? = nil, certificateFingerprint: String? = nil,
                certificateNotAfterMillis: Int64? = nil, breakGlass: [BreakGlassEntry]? = nil) {
        self.role = role
        self.listen = listen
        self.servers = servers
        self.certificateFingerprint = certificateFingerprint
        self.certificateNotAfterMillis = certificateNotAfterMillis
        self.breakGlass = breakGlass
    }
}

/// One server of the tier as a relay reached it (or not) for `doctor`.
public struct TierServerState: Codable, Sendable, Equatable {
    public var address: String
    /// nil: the TLS handshake succeeded with a version in common; else why not.
    public var error: String?

    public init(address: String, error: String?) {
        self.address = address
        self.error = error
    }
}

/// Who a policy requires, over the users the daemon could list (`ControlRequest.policyImpact`).
/// Counts cover every user considered; `users` lists only those a change affects, who would be
/// refused or who are in a grace period (at most `PolicyImpact.maxListed`, then `truncated`).
public struct PolicyImpact: Codable, Sendable, Equatable {
    public static let maxListed = 1_000

    /// What a user gets at the next login under the evaluated policy.
    public enum AtLogin: String, Codable, Sendable, Equatable {
        /// Not required for any service, and not enrolled.
        case notRequired
        /// Enrolled (required or not): asked for a code.
        case code
        /// Required, not enrolled, and the policy enrolls at login.
        case enroll
        /// Required, not enrolled, within a grace period (`graceUntilMillis`).
        case grace
        /// Required, not enrolled, no grace; or enrolled with no factor of a kind allowed: refused.
        /// These are the users a change locks out.
        case refused
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var user: String
        /// "none", "pending" or "active".
        public var enrollment: String
        /// Required (for the default rule or any service) under the policy in force, and under the evaluated one.
        public var requiredBefore: Bool
        public var requiredAfter: Bool
        /// Why, under the evaluated policy.
        public var because: String
        /// What the next login gives under the policy in force, and under the evaluated one.
        public var atLoginBefore: AtLogin
        public var atLogin: AtLogin
        public var graceUntilMillis: Int64?

        public init(user: String, enrollment: String, requiredBefore: Bool, requiredAfter: Bool, because: String,
                    atLoginBefore: AtLogin, atLogin: AtLogin, graceUntilMillis: Int64? = nil) {
            self.user = user
            self.enrollment = enrollment
            self.requiredBefore = requiredBefore
            self.requiredAfter = requiredAfter
            self.because = because
            self.atLoginBefore = atLoginBefore
            self.atLogin = atLogin
            self.graceUntilMillis = graceUntilMillis
        }
    }

    /// Users considered, and where they came from ("twofold database", "passwd", "group wheel").
    public var usersConsidered: Int
    public var sources: [String]
    /// What the daemon could not see, e.g. a passwd source (sss, ldap) that may not enumerate.
    public var notes: [String]
    public var requiredBefore: Int
    public var requiredAfter: Int
    public var newlyRequired: Int
    public var noLongerRequired: Int
    /// Of the users required after, how many would be refused at their next login ...
    public var refused: Int
    /// ... and how many of those are not refused under the policy in force: the users the change locks out.
    public var newlyRefused: Int
    /// Of the users required after, how many are let in without a code until their grace ends.
    public var grace: Int
    public var users: [Entry]
    public var truncated: Bool

    public init(usersConsidered: Int, sources: [String], notes: [String], requiredBefore: Int, requiredAfter: Int,
                newlyRequired: Int, noLongerRequired: Int, refused: Int, newlyRefused: Int, grace: Int, users: [Entry], truncated: Bool) {
        self.usersConsidered = usersConsidered
        self.sources = sources
        self.notes = notes
        self.requiredBefore = requiredBefore
        self.requiredAfter = requiredAfter
        self.newlyRequired = newlyRequired
        self.noLongerRequired = noLongerRequired
        self.refused = refused
        self.newlyRefused = newlyRefused
        self.grace = grace
        self.users = users
        self.truncated = truncated
    }
}

/// Why a control request failed.
public enum ControlErrorCode: String, Codable, Sendable, Equatable {
    case permissionDenied, notFound, invalidRequest, invalidCode, conflict, locked, unavailable
}

/// A new secret: the otpauth URI (for the QR code) and the base32 secret for typing.
public struct EnrollmentOffer: Codable, Sendable, Equatable {
    public var user: String
    public var uri: String
    public var secretBase32: String
    public var digits: Int
    public var period: Int
    public var algorithm: String
    /// How many consecutive codes the policy asks for to confirm (1 or 2).
    public var codesRequired: Int
    /// The factor the enrollment adds, or replaces once confirmed (nil from a daemon before factors had names).
    public var factor: String?

    public init(user: String, uri: String, secretBase32: String, digits: Int, period: Int, algorithm: String, codesRequired: Int = 1,
                factor: String? = nil) {
        self.user = user
        self.uri = uri
        self.secretBase32 = secretBase32
        self.digits = digits
        self.period = period
        self.algorithm = algorithm
        self.codesRequired = codesRequired
        self.factor = factor
    }
}

/// What is known of a user (never a secret).
public struct UserStatus: Codable, Sendable, Equatable {
    public var user: String
    /// "none", "pending" or "active".
    public var enrollment: String
    /// The kinds of the active factors, sorted and comma-joined ("totp", "hotp,totp"); nil when
    /// none is active.
    public var method: String?
    /// The names of the active factors, by name (nil from a daemon before factors had names).
    public var factors: [String]?
    public var required: Bool
    /// Why required or not (e.g. "policy: everyone", "admin override: exempt").
    public var requiredBecause: String
    public var recoveryCodesLeft: Int
    public var failures: Int
    public var lockedUntilMillis: Int64?
    public var lastSuccessMillis: Int64?
    /// The admin override: "required", "exempt" or "policy".
    public var override: String
    /// End of the grace period when one applies to this user.
    public var graceUntilMillis: Int64?
    /// The host of the last successful login that came through a host of the fleet (nil: none
    /// did, or a daemon from before the host registry).
    public var lastSuccessHost: String?
    /// The user's contacts (email addresses, phone numbers), masked, verified or waiting for their
    /// code (nil from a daemon before contacts).
    public var contacts: [ContactInfo]?
    /// The user's security keys (FIDO2), by name (nil from a daemon before keys).
    public var keys: [KeyInfo]?

    public init(user: String, enrollment: String, method: String?, required: Bool, requiredBecause: String,
                recoveryCodesLeft: Int, failures: Int, lockedUntilMillis: Int64?, lastSuccessMillis: Int64?,
                override: String = "policy", graceUntilMillis: Int64? = nil, factors: [String]? = nil, lastSuccessHost: String? = nil,
                contacts: [ContactInfo]? = nil, keys: [KeyInfo]? = nil) {
        self.user = user
        self.enrollment = enrollment
        self.method = method
        self.factors = factors
        self.required = required
        self.requiredBecause = requiredBecause
        self.recoveryCodesLeft = recoveryCodesLeft
        self.failures = failures
        self.lockedUntilMillis = lockedUntilMillis
        self.lastSuccessMillis = lastSuccessMillis
        self.override = override
        self.graceUntilMillis = graceUntilMillis
        self.lastSuccessHost = lastSuccessHost
        self.contacts = contacts
        self.keys = keys
    }
}

/// One audit record as the CLI shows it.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var timeMillis: Int64
    public var action: String
    public var user: String?
    public var service: String?
    public var rhost: String?
    public var tty: String?
    public var peerUID: UInt32?
    public var outcome: String
    public var reason: String?
    /// The host the event happened on (nil: the daemon's own, or a daemon from before the host registry).
    public var host: String?

    public init(timeMillis: Int64, action: String, user: String?, service: String?, rhost: String?, tty: String?,
                peerUID: UInt32?, outcome: String, reason: String?, host: String? = nil) {
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
