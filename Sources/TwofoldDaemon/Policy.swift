import Foundation
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// The policy in force, validated: who must use a second factor, what an unenrolled required user
/// gets, and the parameters for codes and throttling. Stored as a `PolicyDocument` (JSON) in the
/// store once an admin sets it; until then built from the config file.
public struct Policy: Sendable, Equatable {
    public enum Unenrolled: String, Sendable { case enroll, deny, grace }
    public enum ServiceRule: String, Sendable { case required, optional }

    public let document: PolicyDocument
    public let require: RequirementRule
    public let unenrolled: Unenrolled
    public let services: [String: ServiceRule]
    public let hosts: [String: ServiceRule]
    /// The factor kinds a login may use: by host, by service, by default.
    public let factorKinds: Set<FactorKind>
    public let serviceFactorKinds: [String: Set<FactorKind>]
    public let hostFactorKinds: [String: Set<FactorKind>]
    public let newEnrollment: OTPParameters
    /// FIDO2 keys: the models (AAGUIDs) that may be registered; empty: any.
    public let fido2AAGUIDs: [[UInt8]]
    /// SSH keys: the default rule and the hosts' (names or patterns); a user's own comes first (`sshKeyRule`).
    public let sshKeys: SSHKeyRule
    public let hostSSHKeys: [String: SSHKeyRule]
    public let windowPolicy: WindowPolicy
    public let throttlePolicy: ThrottlePolicy

    /// Validates a document; the error names the field.
    public init(_ document: PolicyDocument) throws {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError("policy: \(message)") }
        guard let require = RequirementRule(rawValue: document.require) else { throw fail("require must be nobody, everyone or groups") }
        guard let unenrolled = Unenrolled(rawValue: document.unenrolled) else { throw fail("unenrolled must be enroll, deny or grace") }
        var services: [String: ServiceRule] = [:]
        for (name, rule) in document.services {
            guard !name.isEmpty, name.count <= 64 else { throw fail("service names must be 1 to 64 characters") }
            guard let parsed = ServiceRule(rawValue: rule) else { throw fail("service \(name) must be required or optional") }
            services[name] = parsed
        }
        var hosts: [String: ServiceRule] = [:]
        for (name, rule) in document.hosts {
            guard HostPattern.isValid(name) else { throw fail(Self.hostNameRule) }
            guard let parsed = ServiceRule(rawValue: rule) else { throw fail("host \(name) must be required or optional") }
            hosts[name] = parsed
        }
        func kinds(_ names: [String], _ owner: String) throws -> Set<FactorKind> {
            let parsed = names.compactMap(FactorKind.init(rawValue:))
            guard !names.isEmpty, parsed.count == names.count else {
                throw fail("\(owner) factor kinds must be some of \(FactorKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return Set(parsed)
        }
        let factorKinds = try kinds(document.factorKinds, "the default")
        var serviceFactorKinds: [String: Set<FactorKind>] = [:]
        for (name, list) in document.serviceFactorKinds { serviceFactorKinds[name] = try kinds(list, "service \(name)'s") }
        var hostFactorKinds: [String: Set<FactorKind>] = [:]
        for (name, list) in document.hostFactorKinds {
            guard HostPattern.isValid(name) else { throw fail(Self.hostNameRule) }
            hostFactorKinds[name] = try kinds(list, "host \(name)'s")
        }
        for pattern in document.adminHosts + document.enrollHosts where !HostPattern.isValid(pattern) {
            throw fail("admin and enroll hosts: \(Self.hostNameRule)")
        }
        for admin in document.admins where !LoginDialogRunner.isPlausibleName(admin) || admin.utf8.count > 256 {
            throw fail("admins must be user names")
        }
        guard DeliveredCode.digitRange.contains(document.deliveredCodeDigits) else { throw fail("delivered code digits must be 6 to 8") }
        let aaguids = document.fido2AAGUIDs.compactMap(Fido2Credential.uuidBytes)
        guard aaguids.count == document.fido2AAGUIDs.count else {
            throw fail("fido2 AAGUIDs must be UUIDs such as cb69481e-8ff7-4039-93ec-0a2729a154a8")
        }
        guard let sshKeyTypes = SSHKeyRule.Types(rawValue: document.sshKeyTypes) else { throw fail("ssh key types must be sk or any") }
        var hostSSHKeys: [String: SSHKeyRule] = [:]
        for (name, text) in document.hostSSHKeys {
            guard HostPattern.isValid(name) else { throw fail(Self.hostNameRule) }
            guard let rule = SSHKeyRule(text: text) else { throw fail("host \(name)'s SSH keys must be \(SSHKeyRule.syntax)") }
            hostSSHKeys[name] = rule
        }
        guard (1...1_440).contains(document.adminSessionMinutes) else { throw fail("admin session minutes must be 1 to 1440") }
        if require == .groups && document.requiredGroups.isEmpty { throw fail("require = groups needs at least one required group") }
        if unenrolled == .grace && document.graceDays == nil && document.graceDeadlineMillis == nil {
            throw fail("unenrolled = grace needs grace days or a grace deadline")
        }
        if let days = document.graceDays, !(0...3650).contains(days) { throw fail("grace days must be 0 to 3650") }
        guard (1...2).contains(document.enrollmentCodes) else { throw fail("enrollment codes must be 1 or 2") }
        guard let algorithm = HashAlgorithm(rawValue: document.algorithm.uppercased()) else { throw fail("algorithm must be SHA1, SHA256 or SHA512") }
        let parameters = OTPParameters(method: .totp, algorithm: algorithm, digits: document.digits, period: document.period)
        do { try parameters.validate() } catch { throw fail("\(error)") }
        guard (0...10).contains(document.window) else { throw fail("window must be 0 to 10") }
        guard (0...20).contains(document.maxDrift) else { throw fail("max drift must be 0 to 20") }
        guard (1...100).contains(document.maxFailures) else { throw fail("max failures must be 1 to 100 (NIST SP 800-63B)") }
        guard (0...60_000).contains(document.throttleDelayMillis), (0...600_000).contains(document.throttleMaxDelayMillis) else {
            throw fail("throttle delays out of range")
        }
        guard (1...86_400 * 30).contains(document.lockSeconds) else { throw fail("lock seconds must be 1 to 2592000") }
        self.document = document
        self.require = require
        self.unenrolled = unenrolled
        self.services = services
        self.hosts = hosts
        self.factorKinds = factorKinds
        self.serviceFactorKinds = serviceFactorKinds
        self.hostFactorKinds = hostFactorKinds
        self.newEnrollment = parameters
        self.fido2AAGUIDs = aaguids
        self.sshKeys = SSHKeyRule(types: sshKeyTypes, verifyRequired: document.sshVerifyRequired)
        self.hostSSHKeys = hostSSHKeys
        self.windowPolicy = WindowPolicy(window: document.window, maxDrift: document.maxDrift)
        self.throttlePolicy = ThrottlePolicy(maxFailures: document.maxFailures, baseDelayMillis: document.throttleDelayMillis,
                                             maxDelayMillis: document.throttleMaxDelayMillis,
                                             lockDurationMillis: Int64(document.lockSeconds) * 1000)
    }

    /// The policy the config file describes (used until an admin stores one).
    public static func document(from configuration: DaemonConfiguration) -> PolicyDocument {
        PolicyDocument(require: configuration.require.rawValue, requiredGroups: configuration.requiredGroups,
                       unenrolled: configuration.unenrolled, graceDays: configuration.graceDays,
                       digits: configuration.newEnrollment.digits, algorithm: configuration.newEnrollment.algorithm.rawValue,
                       period: configuration.newEnrollment.period, window: configuration.window, maxDrift: configuration.maxDrift,
                       maxFailures: configuration.maxFailures, throttleDelayMillis: configuration.throttleBaseDelayMillis,
                       throttleMaxDelayMillis: configuration.throttleMaxDelayMillis, lockSeconds: configuration.lockSeconds,
                       deliveredCodeDigits: configuration.delivery.codeDigits)
    }

    static let hostNameRule = "host names and patterns are 1 to 253 letters, digits, '.', '-', '_', '*' or '?'"

    /// Whether a caller on `host` (through its relay) who is in the admin list may open an admin session there.
    public func admitsAdmin(_ user: String, on host: String) -> Bool {
        document.admins.contains(user) && HostPattern.any(document.adminHosts, matches: host)
    }

    /// Whether enrolling (a new factor, enroll at login) is open through `host`'s relay.
    public func admitsEnrollment(on host: String) -> Bool {
        HostPattern.any(document.enrollHosts, matches: host)
    }

    /// Whether `requirement` would look up the user's groups (so the caller can do that off the event loop).
    public func needsGroups(service: String?, host: String? = nil, override: RequirementOverride) -> Bool {
        override == .policy && (host.map { HostPattern.lookup($0, in: hosts) == nil } ?? true) && (service.map { services[$0] == nil } ?? true)
            && require == .groups
    }

    /// One level of the chain, in the order it is consulted.
    public enum Level: String, Sendable, CaseIterable {
        case user, host, service, `default`
    }

    /// The chain's answer: whether a second factor is required, which level decided and why, and
    /// what each level had to say.
    public struct Decision: Sendable, Equatable {
        public var required: Bool
        public var level: Level
        public var because: String
        /// Each level in order, with its rule for this login (nil: none).
        public var steps: [(level: Level, rule: String?)]

        public static func == (a: Decision, b: Decision) -> Bool {
            a.required == b.required && a.level == b.level && a.because == b.because
                && a.steps.map(\.level) == b.steps.map(\.level) && a.steps.map(\.rule) == b.steps.map(\.rule)
        }
    }

    /// Whether `user` must use a second factor for `service` on `host`. The chain, first match
    /// wins: the admin's per-user override › the host's rule › the service's rule › the default
    /// rule (nobody, everyone, or members of the required groups).
    public func decide(user: String, service: String?, host: String? = nil, override: RequirementOverride,
                       groups: (String) -> Set<String> = Accounts.groups(of:)) -> Decision {
        let userRule: (Bool, String)? = switch override {
        case .required: (true, "admin override: required")
        case .exempt: (false, "admin override: exempt")
        case .policy: nil
        }
        let hostRule = host.flatMap { name in
            HostPattern.lookup(name, in: hosts).map { ($0.value == .required, "host \($0.key == name ? name : "\(name) (\($0.key))"): \($0.value.rawValue)") }
        }
        let serviceRule = service.flatMap { name in services[name].map { ($0 == .required, "service \(name): \($0.rawValue)") } }
        let rules: [(Level, (Bool, String)?)] = [(.user, userRule), (.host, hostRule), (.service, serviceRule)]
        let steps = rules.map { ($0.0, $0.1?.1) } + [(Level.default, Optional(defaultRuleText))]
        for (level, rule) in rules {
            if let (required, because) = rule { return Decision(required: required, level: level, because: because, steps: steps) }
        }
        let (required, because) = defaultRule(user: user, groups: groups)
        return Decision(required: required, level: .default, because: because, steps: steps)
    }

    /// `decide` as the pair most callers need.
    public func requirement(user: String, service: String?, host: String? = nil, override: RequirementOverride,
                            groups: (String) -> Set<String> = Accounts.groups(of:)) -> (required: Bool, because: String) {
        let decision = decide(user: user, service: service, host: host, override: override, groups: groups)
        return (decision.required, decision.because)
    }

    /// The factor kinds a login on `service` and `host` may use, by the chain: the user's own kinds
    /// (set by an admin) › the host's › the service's › the default list; with the rule that gave them.
    /// The kinds some login may use: the default list's, any service's or any host's.
    public var kindsAllowedAnywhere: Set<FactorKind> {
        factorKinds.union(serviceFactorKinds.values.joined()).union(hostFactorKinds.values.joined())
    }

    public func allowedKinds(user: Set<FactorKind>? = nil, service: String?, host: String? = nil)
        -> (kinds: Set<FactorKind>, level: Level, because: String) {
        func text(_ kinds: Set<FactorKind>) -> String { FactorKind.allCases.filter(kinds.contains).map(\.rawValue).joined(separator: ", ") }
        if let user { return (user, .user, "admin override: \(text(user))") }
        if let host, let (key, kinds) = HostPattern.lookup(host, in: hostFactorKinds) {
            return (kinds, .host, "host \(key == host ? host : "\(host) (\(key))"): \(text(kinds))")
        }
        if let service, let kinds = serviceFactorKinds[service] { return (kinds, .service, "service \(service): \(text(kinds))") }
        return (factorKinds, .default, "default: \(text(factorKinds))")
    }

    /// The SSH key rule sshd is served by for `user` on `host` (the daemon's own, or a relay's), by
    /// the chain: the user's own (set by an admin) › the host's › the default; with the rule that
    /// gave it. No service level: sshd asks before any PAM service is involved.
    public func sshKeyRule(user: SSHKeyRule?, host: String) -> (rule: SSHKeyRule, level: Level, because: String) {
        if let user { return (user, .user, "admin override: \(user)") }
        if let (key, rule) = HostPattern.lookup(host, in: hostSSHKeys) {
            return (rule, .host, "host \(key == host ? host : "\(host) (\(key))"): \(rule)")
        }
        return (sshKeys, .default, "default: \(sshKeys)")
    }

    private var defaultRuleText: String {
        switch require {
        case .nobody: "nobody"
        case .everyone: "everyone"
        case .groups: "members of " + document.requiredGroups.joined(separator: ", ")
        }
    }

    private func defaultRule(user: String, groups: (String) -> Set<String>) -> (Bool, String) {
        switch require {
        case .nobody: return (false, "policy: nobody is required")
        case .everyone: return (true, "policy: everyone is required")
        case .groups:
            let member = groups(user)
            if let group = document.requiredGroups.first(where: member.contains) {
                return (true, "policy: member of group \(group)")
            }
            return (false, "policy: not in a required group")
        }
    }

    /// For a required user without an enrollment: the end of their grace period (nil: no grace applies).
    public func graceEnd(firstRequiredMillis: Int64) -> Int64? {
        guard unenrolled == .grace else { return nil }
        var end: Int64?
        if let days = document.graceDays { end = firstRequiredMillis + Int64(days) * 86_400_000 }
        if let deadline = document.graceDeadlineMillis { end = min(end ?? deadline, deadline) }
        return end
    }
}

/// The policy in force, replaceable at run time by `policy set`. Until an admin stores one it is
/// the config file's, which a reload (SIGHUP) replaces; once stored, the stored one always wins.
public final class PolicyHolder: Sendable {
    private let state: Mutex<(policy: Policy, stored: Bool)>
    private let store: any TwofoldStore
    static let settingKey = "policy"

    init(initial: Policy, store: any TwofoldStore, stored: Bool = true) {
        state = Mutex((initial, stored))
        self.store = store
    }

    /// Loads the stored policy, or the config file's when none is stored.
    static func load(store: any TwofoldStore, configuration: DaemonConfiguration) async throws -> PolicyHolder {
        guard let text = try await store.setting(settingKey) else {
            return PolicyHolder(initial: try Policy(Policy.document(from: configuration)), store: store, stored: false)
        }
        guard let decoded = try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array(text.utf8)) else {
            throw ConfigurationError("the stored policy cannot be read; fix it with 'twofoldctl policy set' after starting with a clean policy")
        }
        return PolicyHolder(initial: try Policy(decoded), store: store, stored: true)
    }

    public var current: Policy { state.withLock { $0.policy } }

    /// On a store other daemons share, puts the stored policy in force as it is now, so a policy an
    /// admin set through another daemon applies to the next login here. A read that fails keeps the
    /// policy in force (the login's own read fails the same way and gets its verdict); a stored
    /// policy that does not decode is logged by the caller's request, never put in force.
    func refreshIfShared() async {
        guard store.isShared else { return }
        stored(try? await store.setting(Self.settingKey))
    }

    /// Puts in force the stored policy document `text` read from a shared store (nil: none stored,
    /// or the read failed: the policy in force stays).
    func stored(_ text: String?) {
        // Every login on a shared store brings the text: decode it only when it changed.
        guard let text, lastStoredText.withLock({ $0 }) != text else { return }
        guard let decoded = try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array(text.utf8)),
              let policy = try? Policy(decoded) else { return }
        state.withLock { $0 = (policy, true) }
        lastStoredText.withLock { $0 = text }
    }

    /// The stored policy text last put in force by `stored(_:)`.
    private let lastStoredText = Mutex<String?>(nil)
    /// Whether an admin stored the policy in force (else it comes from the config file).
    public var isStored: Bool { state.withLock { $0.stored } }

    /// Validates, stores durably, then puts the policy in force.
    func replace(with document: PolicyDocument) async throws {
        let policy = try Policy(document)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(document))
        let text = String(decoding: bytes, as: UTF8.self)
        try await store.setSetting(Self.settingKey, value: text)
        state.withLock { $0 = (policy, true) }
        lastStoredText.withLock { $0 = text }
    }

    /// The config file's policy after a reload: in force unless an admin has stored one.
    func configured(_ policy: Policy) {
        state.withLock { if !$0.stored { $0.policy = policy } }
    }
}
