import Foundation
import Testing
import TwofoldTestSupport
@testable import TwofoldDaemon
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// The policy chain, first match wins: user override › host › service › default. Every
/// combination of the four levels, against a table of what each level says on its own.
@Suite("policy chain")
struct PolicyChainTests {
    enum Rule: String, CaseIterable { case none, required, optional }

    struct Row: CustomStringConvertible, Sendable {
        var override: RequirementOverride
        var host: Rule
        var service: Rule
        var everyone: Bool
        var description: String { "override \(override), host \(host), service \(service), default \(everyone ? "everyone" : "nobody")" }
    }

    static let rows: [Row] = [RequirementOverride.required, .exempt, .policy].flatMap { o in
        Rule.allCases.flatMap { h in Rule.allCases.flatMap { s in [true, false].map { Row(override: o, host: h, service: s, everyone: $0) } } }
    }

    /// The expected decision, written as the chain reads in docs/cli.md.
    static func expected(_ row: Row) -> (required: Bool, level: Policy.Level, because: String) {
        switch row.override {
        case .required: return (true, .user, "admin override: required")
        case .exempt: return (false, .user, "admin override: exempt")
        case .policy: break
        }
        if row.host != .none { return (row.host == .required, .host, "host bastion: \(row.host.rawValue)") }
        if row.service != .none { return (row.service == .required, .service, "service sshd: \(row.service.rawValue)") }
        return row.everyone ? (true, .default, "policy: everyone is required") : (false, .default, "policy: nobody is required")
    }

    static func policy(_ row: Row) throws -> Policy {
        try Policy(PolicyDocument(require: row.everyone ? "everyone" : "nobody",
                                  services: row.service == .none ? [:] : ["sshd": row.service.rawValue],
                                  hosts: row.host == .none ? [:] : ["bastion": row.host.rawValue]))
    }

    @Test("override × host × service × default → decision, level and reason", arguments: rows)
    func chain(row: Row) throws {
        let decision = try Self.policy(row).decide(user: "ursula", service: "sshd", host: "bastion", override: row.override)
        let want = Self.expected(row)
        #expect(decision.required == want.required && decision.level == want.level && decision.because == want.because, "\(row): \(decision)")
        #expect(decision.steps.map(\.level) == [.user, .host, .service, .default])
        // The host and service rules bind only their own host and service.
        let elsewhere = try Self.policy(row).decide(user: "ursula", service: "login", host: "other", override: row.override)
        #expect(elsewhere.level == (row.override == .policy ? .default : .user), "\(row): \(elsewhere)")
    }

    @Test("a login here is on this host: a host rule for it decides before the service rule")
    func loginUsesTheLocalHost() async throws {
        let document = PolicyDocument(require: "everyone", services: ["sshd": "required"], hosts: [HostName.local: "optional"])
        let world = try await InProcessDaemon(policy: document)
        defer { world.close() }
        let context = LoginContext(user: "ursula", service: "sshd", peer: PeerCredentials(pid: 1, uid: 0, gid: 0))
        guard case .ignore = await world.authenticator.begin(context) else { Issue.record("the host rule did not decide"); return }
        let other = try Policy(PolicyDocument(require: "everyone", services: ["sshd": "required"], hosts: ["elsewhere": "optional"]))
        #expect(other.requirement(user: "ursula", service: "sshd", host: HostName.local, override: .policy).required)
    }

    @Test("a policy stored before host rules existed still loads (hosts empty)")
    func storedPolicyWithoutHosts() throws {
        let old = #"{"algorithm":"SHA1","allowDisable":true,"digits":6,"enrollmentCodes":1,"lockSeconds":900,"maxDrift":3,"maxFailures":10,"period":30,"require":"everyone","requiredGroups":[],"selfEnrollment":true,"services":{"sshd":"optional"},"throttleDelayMillis":1000,"throttleMaxDelayMillis":30000,"unenrolled":"deny","window":1}"#
        let decoded = try ControlCodec.decodeJSON(PolicyDocument.self, from: Array(old.utf8))
        #expect(decoded.hosts.isEmpty && decoded.require == "everyone" && decoded.services == ["sshd": "optional"])
        // A required field still missing is an error, not a silent default.
        #expect(throws: (any Error).self) { try ControlCodec.decodeJSON(PolicyDocument.self, from: Array(old.replacingOccurrences(of: #""require":"everyone","#, with: "").utf8)) }
    }

    @Test("host rules are validated like service rules", arguments: [["bastion": "maybe"], ["": "required"], ["a b": "required"]])
    func invalidHosts(hosts: [String: String]) {
        #expect(throws: ConfigurationError.self) { try Policy(PolicyDocument(hosts: hosts)) }
    }
}

/// The factor kinds a login may use follow the chain's host › service › default levels.
@Suite("factor kinds by the chain")
struct FactorKindsChainTests {
    @Test("host list › service list › default list", arguments: [
        ("bastion", "sshd", Set<FactorKind>([.totp]), Policy.Level.host),
        ("other", "sshd", [.totp, .recovery], .service),
        ("other", "login", [.totp, .hotp, .recovery], .default),
        ("bastion", "login", [.totp], .host),
    ] as [(String, String, Set<FactorKind>, Policy.Level)])
    func chain(host: String, service: String, kinds: Set<FactorKind>, level: Policy.Level) throws {
        let policy = try Policy(PolicyDocument(serviceFactorKinds: ["sshd": ["totp", "recovery"]], hostFactorKinds: ["bastion": ["totp"]]))
        let allowed = policy.allowedKinds(service: service, host: host)
        #expect(allowed.kinds == kinds && allowed.level == level, "\(host)/\(service): \(allowed)")
    }

    @Test("the user's own kinds come first, whatever host and service")
    func userLevel() throws {
        let policy = try Policy(PolicyDocument(serviceFactorKinds: ["sshd": ["totp", "recovery"]], hostFactorKinds: ["bastion": ["totp"]]))
        let allowed = policy.allowedKinds(user: [.hotp], service: "sshd", host: "bastion")
        #expect(allowed.kinds == [.hotp] && allowed.level == .user && allowed.because == "admin override: hotp")
    }

    @Test("unknown or empty kind lists are refused", arguments: [
        PolicyDocument(factorKinds: []), PolicyDocument(factorKinds: ["fax"]), PolicyDocument(serviceFactorKinds: ["sshd": ["totp", "fido"]]),
        PolicyDocument(hostFactorKinds: ["h": []]),
    ])
    func invalid(document: PolicyDocument) {
        #expect(throws: ConfigurationError.self) { try Policy(document) }
    }

    @Test("a login uses only the kinds allowed for it: a recovery code refused at sshd works at login; an HOTP-only user is denied where only TOTP may be used")
    func enforcedAtLogin() throws {
        let daemon = try DaemonProcess()
        guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("no policy") }
        policy.serviceFactorKinds = ["sshd": ["totp"]]
        #expect(try daemon.control(.policySet(policy)) == .ok)
        // carol: a TOTP factor and a google-authenticator scratch code as recovery code.
        let app = TestAuthenticator(secret: try OTPSecret.generate(), parameters: OTPParameters())
        let file = "\(app.base32)\n\" TOTP_AUTH\n12345678\n"
        #expect(try daemon.control(.importEnrollment(user: "carol", source: .googleAuthenticator(file), name: nil)) == .imported(recoveryCodes: 1))
        #expect(try daemon.login("carol", answer: "12345678", service: "sshd").verdict == .failure, "recovery codes may not be used at sshd")
        #expect(try daemon.login("carol", answer: "12345678", service: "login").verdict == .success, "but may at login, and it is unused")
        #expect(try daemon.login("carol", answer: app.code(), service: "sshd").verdict == .success)
        // dave: HOTP only; sshd allows TOTP only, and no recovery: denied before any prompt.
        let token = TestAuthenticator(secret: try OTPSecret.generate(), parameters: OTPParameters(method: .hotp))
        #expect(try daemon.control(.importEnrollment(user: "dave", source: .uri(token.uri(account: "dave")), name: "token")) == .imported(recoveryCodes: 0))
        let denied = try daemon.login("dave", answer: nil, service: "sshd")
        #expect(denied.verdict == .denied, "\(denied)")
        guard case .audit(let entries) = try daemon.control(.audit(user: "dave", sinceMillis: nil, outcome: "denied", limit: 5)) else {
            throw HarnessError("no audit")
        }
        #expect(entries.last?.reason == "no factor of a kind allowed for this login (service sshd: totp)", "\(entries)")
        // The user's own kinds (stored, the chain's first level) let dave's token in at sshd.
        #expect(try daemon.control(.setFactorKinds(user: "dave", kinds: ["hotp"])) == .ok)
        let hotp = OneTimeCode.hotp(secret: token.secret, counter: 0, digits: 6, algorithm: .sha1)
        #expect(try daemon.login("dave", answer: hotp, service: "sshd").verdict == .success)
        #expect(try daemon.control(.setFactorKinds(user: "dave", kinds: ["fax"])).isInvalidRequest)
        #expect(try daemon.control(.setFactorKinds(user: "dave", kinds: nil)) == .ok)
        #expect(try daemon.login("dave", answer: nil, service: "sshd").verdict == .denied, "back to the policy's kinds")
    }
}

extension ControlResponse {
    var isInvalidRequest: Bool {
        if case .error(.invalidRequest, _) = self { return true }
        return false
    }
}

struct SSHKeyRuleChainTests {
    static let document = PolicyDocument(sshKeyTypes: "sk", sshVerifyRequired: false,
                                         hostSSHKeys: ["bastion": "any", "bastion-*": "sk,verify-required", "*.lab": "any,verify-required"])

    @Test("user › host (its own name before the longest pattern) › default", arguments: [
        ("bastion", nil, "any", Policy.Level.host),
        ("bastion-2", nil, "sk,verify-required", .host),
        ("Bastion", nil, "any", .host),
        ("db.lab", nil, "any,verify-required", .host),
        ("web", nil, "sk", .default),
        ("bastion-2", "any", "any", .user),
    ] as [(String, String?, String, Policy.Level)])
    func chain(host: String, user: String?, rule: String, level: Policy.Level) throws {
        let policy = try Policy(Self.document)
        let found = policy.sshKeyRule(user: user.flatMap(SSHKeyRule.init(text:)), host: host)
        #expect(found.rule.description == rule && found.level == level, "\(host)/\(user ?? "-"): \(found)")
    }

    @Test("bad rules, host names and key types are refused", arguments: [
        PolicyDocument(sshKeyTypes: "rsa"), PolicyDocument(hostSSHKeys: ["h": "sk,no-touch-required"]),
        PolicyDocument(hostSSHKeys: ["h": ""]), PolicyDocument(hostSSHKeys: ["a b": "sk"]), PolicyDocument(hostSSHKeys: ["h": "verify-required"]),
    ])
    func invalid(document: PolicyDocument) {
        #expect(throws: ConfigurationError.self) { try Policy(document) }
    }

    @Test("a policy stored before host SSH rules existed still loads (none)")
    func older() throws {
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(PolicyDocument())) as! [String: Any]
        json["hostSSHKeys"] = nil
        let decoded = try JSONDecoder().decode(PolicyDocument.self, from: JSONSerialization.data(withJSONObject: json))
        let policy = try Policy(decoded)
        #expect(decoded.hostSSHKeys.isEmpty && policy.sshKeyRule(user: nil, host: "x").level == .default)
    }
}
