import NIOPosix
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

extension ControlService {
    /// `policy explain`: the chain for one user, service and host, with the level that decided and
    /// what the next login gives (the same decision a login makes, without its side effects).
    func explain(_ user: String, service: String?, host: String?) async throws -> PolicyExplanation {
        if let service, service.isEmpty || service.utf8.count > 64 { throw ControlFailure(.invalidRequest, "service names are 1 to 64 characters") }
        if let host, host.isEmpty || host.utf8.count > 253 { throw ControlFailure(.invalidRequest, "host names are 1 to 253 characters") }
        let record = try await store.user(user)
        let current = policy.current
        let override = record?.requirement ?? .policy
        let groups = current.needsGroups(service: service, host: host ?? HostName.local, override: override)
            ? ((try? await NIOThreadPool.singleton.runIfActive { Accounts.groups(of: user) }) ?? [])
            : []
        let host = host ?? HostName.local
        let decision = current.decide(user: user, service: service, host: host, override: override, groups: { _ in groups })
        let (atLogin, graceEnd) = PolicyImpactSurvey.atLogin(current, required: decision.required, record: record, now: clock.nowMillis(),
                                                            service: service, host: host)
        let chain = decision.steps.map {
            PolicyExplanation.Step(level: $0.level.rawValue, rule: $0.rule, decided: $0.level == decision.level)
        }
        let kinds = current.allowedKinds(user: record?.factorKinds, service: service, host: host)
        let sshKeys = current.sshKeyRule(user: record?.sshKeyRule, host: host)
        return PolicyExplanation(user: user, service: service, host: host, required: decision.required, decidedBy: decision.level.rawValue,
                                 because: decision.because, chain: chain, enrollment: record?.status?.rawValue ?? "none",
                                 atLogin: atLogin, graceUntilMillis: graceEnd,
                                 factorKinds: FactorKind.allCases.filter(kinds.kinds.contains).map(\.rawValue), factorKindsBecause: kinds.because,
                                 sshKeys: sshKeys.rule.description, sshKeysBecause: sshKeys.because)
    }
}

extension ControlService {
    /// `user factor-kinds`: the kinds one user may use, whatever host and service (nil: the policy's).
    func setFactorKinds(_ user: String, kinds: [String]?, peer: PeerCredentials) async throws -> ControlResponse {
        var parsed: Set<FactorKind>?
        if let kinds {
            let known = kinds.compactMap(FactorKind.init(rawValue:))
            guard !kinds.isEmpty, known.count == kinds.count else {
                throw ControlFailure(.invalidRequest, "factor kinds are some of \(FactorKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            parsed = Set(known)
        }
        try await store.setFactorKinds(user: user, parsed)
        let text = parsed.map { set in FactorKind.allCases.filter(set.contains).map(\.rawValue).joined(separator: ",") } ?? "policy"
        await auditChange("policy", user: user, peer: peer, reason: "factor kinds set to \(text)")
        return .ok
    }
}
