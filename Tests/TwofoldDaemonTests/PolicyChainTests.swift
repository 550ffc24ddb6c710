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
