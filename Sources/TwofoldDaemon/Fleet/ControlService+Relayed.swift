import TwofoldProtocol
import TwofoldStore

/// Control requests from callers on other hosts, through their relays. A host is trusted with its
/// own logins only: root there is no admin here, and a compromised host could keep a code its user
/// typed and replay it into a credential of its own. So:
/// - a caller may always ask about its own account (`ping`, `status`, `listFactors`);
/// - changing a credential (enrolling, adding or removing a factor, new recovery codes, turning 2FA
///   off) goes through the hosts the policy's `enrollHosts` names, or an admin session;
/// - admin requests need an admin session: a user in the policy's `admins`, on a host its
///   `adminHosts` names, who gave a current code of theirs (checked here, used up like a login's)
///   within `adminSessionMinutes`;
/// - the host registry and key rotation only on a server's own socket (moving hosts in too).
extension ControlService {
    enum RelayedClass {
        case own, credential, admin, serverOnly
    }

    static func relayedClass(_ request: ControlRequest) -> RelayedClass {
        switch request {
        case .ping, .status, .listFactors, .contactList(_, false), .keyList(_, false), .sshKeyList(_, false):
            return .own
        case .keyBegin, .keyFinish, .sshKeyAdd:
            // No secret passes the host (a key keeps its private key; the server checks the
            // attestation; an SSH key is public), so a key may be registered from any host, with a
            // current code.
            return .own
        case .enrollBegin, .enrollVerify, .enrollActivate, .regenerateRecoveryCodes, .disable, .removeFactor, .contactAdd, .contactVerify,
             .contactRemove, .codeSend, .keyRemove, .sshKeyRemove:
            return .credential
        case .rekey, .importEnrollment, .importEnrollments, .hostAdd, .hostList, .hostRevoke, .breakGlassIssue, .breakGlassList, .breakGlassClear,
             .relayAudit, .backupBegin, .backupRead, .backupEnd:
            return .serverOnly
        default:
            return .admin
        }
    }

    /// Whether the relayed caller acts as an admin for `request`, or why it is refused.
    func relayedAccess(_ request: ControlRequest, relayed: RelayedPeer) async -> Result<Bool, ControlFailure> {
        let host = relayed.host
        let session = await adminSessionOpen(caller: relayed.context.caller, host: host)
        switch Self.relayedClass(request) {
        case .own:
            return .success(session)
        case .credential:
            if session || policy.current.admitsEnrollment(on: host) { return .success(session) }
            return .failure(ControlFailure(.permissionDenied, "credentials change only on the servers or on hosts the policy opens to enrollment; host \(host) is not one"))
        case .admin:
            if session { return .success(true) }
            return .failure(ControlFailure(.permissionDenied, "admin requests through host \(host) need an admin session: twofoldctl admin-session (an admin of the fleet, on a host the policy's admin hosts name)"))
        case .serverOnly:
            return .failure(ControlFailure(.permissionDenied, "this request is taken on a server's own socket only, not through a relay (host \(host))"))
        }
    }

    /// The settings row of an admin session: its end, in ms since the epoch.
    private static func sessionKey(_ caller: String, _ host: String) -> String { "admin-session:\(caller)@\(host)" }

    private func adminSessionOpen(caller: String?, host: String) async -> Bool {
        guard let caller, policy.current.admitsAdmin(caller, on: host),
              let text = try? await store.setting(Self.sessionKey(caller, host)), let until = Int64(text) else { return false }
        return until > clock.nowMillis()
    }

    /// Opens (or renews) an admin session for the relayed caller on its host, with a current code of
    /// the caller's. Audited either way.
    func openAdminSession(code: String, relayed: RelayedPeer, peer: PeerCredentials) async -> ControlResponse {
        let request = ControlRequest.adminSession(code: code)
        guard let caller = relayed.context.caller else {
            return await refused(request, ControlFailure(.permissionDenied, "your uid has no account name on host \(relayed.host)"), peer: peer)
        }
        let current = policy.current
        guard current.admitsAdmin(caller, on: relayed.host) else {
            return await refused(request, ControlFailure(.permissionDenied, "\(caller) is not an admin of the fleet on host \(relayed.host) (policy: admins and admin hosts)"), peer: peer)
        }
        do {
            try await requireCurrentCode(code, user: caller, peer: peer, purpose: "admin session")
            let until = clock.nowMillis() + Int64(current.document.adminSessionMinutes) * 60_000
            try await store.setSetting(Self.sessionKey(caller, relayed.host), value: String(until))
            await auditChange("admin-session", user: caller, peer: peer, reason: "admin session on host \(relayed.host) until \(until)")
            return .adminSession(untilMillis: until)
        } catch let failure as ControlFailure {
            await audit("admin-session", user: caller, peer: peer, outcome: "failure", reason: "\(failure.message) (host \(relayed.host))")
            return .error(code: failure.code, message: failure.message)
        } catch {
            return .error(code: .unavailable, message: "the admin session cannot be recorded now: \(error)")
        }
    }

    /// Records what a relay reports of its emergency codes: at most 1,000 events a request, under
    /// the relay's registered host whatever the entries say, as action `break-glass`.
    func recordRelayAudit(_ entries: [AuditEntry], relayed: RelayedPeer, peer: PeerCredentials) async -> ControlResponse {
        guard entries.count <= BreakGlass.maxPending else { return .error(code: .invalidRequest, message: "too many events in one report") }
        let now = clock.nowMillis()
        let mutations = entries.compactMap { entry -> StoreMutation? in
            guard Self.isPlausibleReport(entry, nowMillis: now) else { return nil }
            return .audit(AuditRecord(timeMillis: entry.timeMillis, action: "break-glass", user: entry.user, service: entry.service,
                                      rhost: entry.rhost, peerUID: entry.peerUID, outcome: entry.outcome,
                                      reason: "reported by the host: " + (entry.reason ?? ""), host: relayed.host))
        }
        guard await authenticator.commit(mutations) != nil else {
            return .error(code: .unavailable, message: "the audit cannot be written now")
        }
        return .ok
    }

    /// What a relay may report of its emergency codes: a known outcome, names and a reason without
    /// control characters and of a name's length (the host is trusted with its own events, not with
    /// the audit's shape), a time not in the future. Anything else is dropped.
    static func isPlausibleReport(_ entry: AuditEntry, nowMillis: Int64) -> Bool {
        let texts = [entry.user, entry.service, entry.rhost, entry.reason].compactMap { $0 }
        return ["issued", "cleared", "success", "failure"].contains(entry.outcome) && entry.action == "break-glass"
            && texts.allSatisfy { LoginDialogRunner.isPlausibleName($0) && $0.utf8.count <= 256 }
            && entry.timeMillis > 0 && entry.timeMillis <= nowMillis + 300_000
    }
}
