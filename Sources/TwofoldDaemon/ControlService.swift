#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOPosix
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// Answers control requests (enrollment, status, admin). Users act on their own account; admin
/// requests need root or membership of the configured admin group. Every change is audited.
public final class ControlService: Sendable {
    let store: any TwofoldStore
    let authenticator: Authenticator
    let enrollment: EnrollmentService
    let policy: PolicyHolder
    let clock: any WallClock
    let live: LiveConfiguration
    /// The uid of `authorized_keys_user`, looked up once per name.
    let keysAccount = KeysAccount()
    /// The keyring and where each key came from (for `serverInfo` and `rekey`).
    let keys: DaemonKeys
    let recoveryPepper: SecretBytes
    let refusals: RefusalAuditor
    /// Sends contact codes and codes for twofoldctl requests.
    let delivery: CodeDelivery
    let metrics: DaemonMetrics
    let logger: Logger
    /// Called after the host registry changed here (a server ends a revoked host's connections at once).
    let hostsChanged: @Sendable () async -> Void
    /// Backups in progress (`twofoldctl backup`), bounded.
    let backupSlots = BackupSlots()

    init(store: any TwofoldStore, authenticator: Authenticator, enrollment: EnrollmentService, policy: PolicyHolder,
         clock: any WallClock, live: LiveConfiguration, keys: DaemonKeys, recoveryPepper: SecretBytes, refusals: RefusalAuditor,
         delivery: CodeDelivery, metrics: DaemonMetrics, logger: Logger, hostsChanged: @escaping @Sendable () async -> Void = {}) {
        self.hostsChanged = hostsChanged
        self.delivery = delivery
        self.store = store
        self.authenticator = authenticator
        self.enrollment = enrollment
        self.policy = policy
        self.clock = clock
        self.live = live
        self.keys = keys
        self.recoveryPepper = recoveryPepper
        self.refusals = refusals
        self.metrics = metrics
        self.logger = logger
    }

    /// Serves a control connection: each REQUEST gets its RESPONSE, in order, until the peer closes.
    func serve(dialog: AsyncDialog, peer: PeerCredentials) async throws {
        let session = ControlSession()
        do {
            while let message = try await dialog.receive() {
                guard case .request(let json) = message else {
                    throw ProtocolError.unexpectedMessage("a control connection may only send REQUEST")
                }
                try await dialog.send(await handle(json: json, peer: peer, session: session))
            }
        } catch {
            await dropBackup(of: session, peer: peer)
            throw error
        }
        // A backup the client did not end goes with its connection.
        await dropBackup(of: session, peer: peer)
    }

    /// Decodes, authorizes and runs one request; always returns a RESPONSE frame.
    func handle(json: [UInt8], peer: PeerCredentials, session: ControlSession? = nil) async -> Message {
        let response: ControlResponse
        if let request = try? ControlCodec.decodeJSON(ControlRequest.self, from: json) {
            metrics.controlRequest(request.name)
            response = await handle(request, peer: peer, session: session)
        } else {
            metrics.controlRequest("invalid")
            response = .error(code: .invalidRequest, message: "the request is not a valid control request (is twofoldctl the same version as twofoldd?)")
        }
        do {
            return try ControlCodec.encodeResponse(response)
        } catch {
            // Only a response over the 4 MiB frame bound gets here (a very large audit or user page).
            let tooLarge = ControlResponse.error(code: .invalidRequest, message: "the answer is larger than 4 MiB; ask for fewer records (--limit, --since)")
            return (try? ControlCodec.encodeResponse(tooLarge)) ?? .protocolError("response encoding failed")
        }
    }

    /// Runs one decoded request for `peer`.
    public func handle(_ request: ControlRequest, peer: PeerCredentials) async -> ControlResponse {
        await handle(request, peer: peer, session: nil)
    }

    /// Runs one decoded request for `peer`, on the connection whose state is `session`.
    func handle(_ request: ControlRequest, peer: PeerCredentials, session: ControlSession?) async -> ControlResponse {
        // sshd's AuthorizedKeysCommand, on every SSH connection attempt: no NSS lookup, no policy
        // refresh beyond the store's; its account may ask this and nothing else.
        var keysUser = false
        if peer.relayed == nil, !peer.isRoot { keysUser = await keysAccount.matches(peer.uid, name: live.current.sshKeys.authorizedKeysUser) }
        if case .authorizedKeys(let user) = request {
            return await serveAuthorizedKeys(user, peer: peer, allowed: peer.isRoot || keysUser || peer.relayed != nil)
        }
        if keysUser {
            return await refused(request, ControlFailure(.permissionDenied, "authorized_keys_user may only ask for the keys sshd serves"), peer: peer)
        }
        // NSS lookups (maybe LDAP or sssd) run on NIO's thread pool, not on an event loop.
        // A named user is taken as the system spells it (NSS may accept "Alice" for "alice"), so one
        // account has one record whatever case an admin types.
        var relayedAdmin = false
        if let relayed = peer.relayed {
            if case .adminSession(let code) = request { return await openAdminSession(code: code, relayed: relayed, peer: peer) }
            if case .relayAudit(let entries) = request { return await recordRelayAudit(entries, relayed: relayed, peer: peer) }
            switch await relayedAccess(request, relayed: relayed) {
            case .success(let admin): relayedAdmin = admin
            case .failure(let refusal): return await refused(request, refusal, peer: peer)
            }
        }
        let adminGroup = live.current.adminGroup
        let named = request.targetUser
        // A relayed caller is who its host says, on that host, and never an admin here.
        let (caller, admin, canonical): (String?, Bool, String?)
        if let relayed = peer.relayed {
            (caller, admin, canonical) = (relayed.context.caller, relayedAdmin, nil)
        } else {
            (caller, admin, canonical) = (try? await NIOThreadPool.singleton.runIfActive { () -> (String?, Bool, String?) in
                let caller = Accounts.name(of: peer.uid)
                return (caller, Self.isAdmin(peer: peer, caller: caller, adminGroup: adminGroup), named.flatMap(Accounts.canonicalName(of:)))
            }) ?? (nil, peer.isRoot, nil)
        }
        let request = canonical.map { request.naming($0) } ?? request
        await policy.refreshIfShared()
        do {
            switch request {
            case .ping:
                return .ok
            case .keyBegin(let user, let name, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await beginKey(target, name: name, code: code, peer: peer, admin: admin, session: session)
            case .keyFinish(let registration):
                return try await finishKey(registration, peer: peer, session: session)
            case .keyList(let user, let all):
                if all && user == nil {
                    try requireAdmin(admin)
                    return .keys(try await allKeys())
                }
                return .keys(try await keys(of: try resolve(user, caller: caller, admin: admin)))
            case .sshKeyAdd(let user, let name, let line, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await addSSHKey(target, name: name, line: line, code: code, peer: peer, admin: admin)
            case .sshKeyList(let user, let all):
                if all && user == nil {
                    try requireAdmin(admin)
                    return .sshKeys(try await allSSHKeys())
                }
                return .sshKeys(try await sshKeyInfos(of: try resolve(user, caller: caller, admin: admin)))
            case .sshKeyRemove(let user, let name, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await removeSSHKeys(target, name: name, code: code, peer: peer, admin: admin)
            case .sshKeyImport(let items):
                try requireAdmin(admin)
                return try await importSSHKeys(items, peer: peer)
            case .authorizedKeys:
                preconditionFailure("answered before authorization")
            case .keyRemove(let user, let name, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await removeKeys(target, name: name, code: code, peer: peer, admin: admin)
            case .adminSession:
                throw ControlFailure(.invalidRequest, "admin sessions are for requests through relays; on a server's own socket root and the admin group are admins")
            case .breakGlassIssue, .breakGlassList, .breakGlassClear:
                throw ControlFailure(.invalidRequest, "emergency codes belong to a relay's host: run this on that host (role = relay)")
            case .relayAudit:
                throw ControlFailure(.invalidRequest, "only a relay reports audit events, through the tier connection")
            case .enrollBegin(let user, let currentCode, let name):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await enrollBegin(target, currentCode: currentCode, name: name, peer: peer, admin: admin)
            case .enrollVerify(let user, let codes):
                let target = try resolve(user, caller: caller, admin: admin)
                let recovery = try await enrollment.verify(user: target, codes: codes)
                await audit("enroll", user: target, peer: peer, outcome: "verified", reason: recovery.isEmpty
                    ? "codes matched; the user's recovery codes are kept; waiting for activation"
                    : "codes matched; waiting for the user to save recovery codes")
                return .recoveryCodes(recovery)
            case .enrollActivate(let user):
                let target = try resolve(user, caller: caller, admin: admin)
                let factor = try await enrollment.activate(user: target)
                // The factor named: a restore re-applies a new secret by removing the old one (twofoldd(8)).
                await audit("enroll", user: target, peer: peer, outcome: "success", reason: "enrollment of factor '\(factor)' active")
                return .ok
            case .status(let user):
                let target = try resolve(user, caller: caller, admin: admin)
                return .status(try await status(of: target))
            case .regenerateRecoveryCodes(let user, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                try await requireCurrentCode(code, user: target, peer: peer, purpose: "new recovery codes")
                let (codes, hashes) = try enrollment.makeRecoveryCodes()
                try await store.replaceRecoveryCodes(user: target, codes: hashes)
                await audit("recovery", user: target, peer: peer, outcome: "success", reason: "new set of \(codes.count) recovery codes")
                return .recoveryCodes(codes)
            case .disable(let user, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await disable(target, code: code, peer: peer, admin: admin)

            case .listFactors(let user):
                return .factors(try await factors(of: try resolve(user, caller: caller, admin: admin)))
            case .removeFactor(let user, let name, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await removeFactor(name, of: target, code: code, peer: peer, admin: admin)
            case .listUsers(let after, let limit):
                try requireAdmin(admin)
                let records = try await store.listUsers(after: after, limit: min(max(limit, 1), 10_000))
                let hosts = try await store.lastSuccessHosts(users: records.map(\.name))
                return .users(records.map { status(of: $0, lastSuccessHost: hosts[$0.name]) })
            case .showUser(let user):
                try requireAdmin(admin)
                return .status(try await status(of: try validName(user)))
            case .setRequirement(let user, let setting):
                try requireAdmin(admin)
                let override: RequirementOverride = switch setting {
                case .required: .required
                case .exempt: .exempt
                case .policy: .policy
                }
                try await store.setRequirement(user: try validName(user), override)
                await audit("policy", user: user, peer: peer, outcome: "success", reason: "override set to \(setting.rawValue)")
                return .ok
            case .revoke(let user):
                try requireAdmin(admin)
                let removed = try await store.revoke(user: user)
                await audit("revoke", user: user, peer: peer, outcome: removed ? "success" : "noop", reason: removed ? nil : "nothing to revoke")
                return removed ? .ok : .error(code: .notFound, message: "user '\(user)' has no enrollment")
            case .unlock(let user):
                try requireAdmin(admin)
                try await store.unlock(user: user)
                await audit("unlock", user: user, peer: peer, outcome: "success", reason: nil)
                return .ok
            case .policyShow:
                try requireAdmin(admin)
                return .policy(policy.current.document)
            case .policySet(let document):
                try requireAdmin(admin)
                if live.current.fido2.rpID == nil, Self.allowsKeys(document) {
                    throw ControlFailure(.invalidRequest, "the policy allows fido2, but this server has no fido2_rp_id: set it in twofoldd.conf first (every server of a fleet the same)")
                }
                let previous = policy.current.document
                do { try await policy.replace(with: document) } catch let error as ConfigurationError {
                    throw ControlFailure(.invalidRequest, error.message)
                }
                let changed = PolicyDocument.changedFields(from: previous, to: document)
                await audit("policy", user: nil, peer: peer, outcome: "success",
                            reason: "policy replaced" + (changed.isEmpty ? " (no field changed)" : "; changed: " + changed.joined(separator: ", ")))
                return .ok
            case .importEnrollment(let user, let source, let name):
                try requireAdmin(admin)
                return try await importEnrollment(try validName(user), source: source, name: name, peer: peer)
            case .importEnrollments(let items):
                try requireAdmin(admin)
                return try await importEnrollments(items, peer: peer)
            case .audit(let user, let since, let outcome, let limit, let host, let action):
                try requireAdmin(admin)
                let records = try await store.audit(AuditQuery(user: user, sinceMillis: since, outcome: outcome, host: host, action: action,
                                                               limit: min(max(limit, 1), 100_000)))
                return .audit(records.map {
                    AuditEntry(timeMillis: $0.timeMillis, action: $0.action, user: $0.user, service: $0.service, rhost: $0.rhost,
                               tty: $0.tty, peerUID: $0.peerUID, outcome: $0.outcome, reason: $0.reason, host: $0.host)
                })
            case .setFactorKinds(let user, let kinds):
                try requireAdmin(admin)
                return try await setFactorKinds(try validName(user), kinds: kinds, peer: peer)
            case .setSSHKeyRule(let user, let rule):
                try requireAdmin(admin)
                return try await setSSHKeyRule(try validName(user), rule: rule, peer: peer)
            case .policyExplain(let user, let service, let host):
                try requireAdmin(admin)
                return .policyExplanation(try await explain(try validName(user), service: service, host: host))
            case .serverInfo:
                try requireAdmin(admin)
                return .serverInfo(await serverInfo())
            case .rekey(let check, let cursor):
                try requireAdmin(admin)
                return .rekey(try await rekey(check: check, cursor: cursor, peer: peer))
            case .hostAdd(let name, let pem, let fingerprint, let notAfter):
                try requireAdmin(admin)
                return try await addHost(name, certificatePEM: pem, fingerprint: fingerprint, notAfterMillis: notAfter, peer: peer)
            case .hostList:
                try requireAdmin(admin)
                return .hosts(try await hostInfos(nil))
            case .hostRevoke(let name):
                try requireAdmin(admin)
                return try await revokeHost(name, peer: peer)
            case .metrics:
                try requireAdmin(admin)
                return .metricsText(metrics.exposition())
            case .backupBegin:
                try requireAdmin(admin)
                return try await beginBackup(peer: peer, session: session)
            case .backupRead(let id, let offset):
                try requireAdmin(admin)
                return try await readBackup(id, offset: offset, session: session)
            case .backupEnd(let id):
                try requireAdmin(admin)
                return try await endBackup(id, peer: peer, session: session)
            case .contactAdd(let user, let channel, let value, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await addContact(target, channel: channel, value: value, code: code, peer: peer, admin: admin)
            case .contactVerify(let user, let code):
                return try await verifyContact(try resolve(user, caller: caller, admin: admin), code: code, peer: peer)
            case .contactRemove(let user, let channel, let value, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await removeContact(target, channel: channel, value: value, code: code, peer: peer, admin: admin)
            case .contactList(let user, let all):
                if all && user == nil {
                    try requireAdmin(admin)
                    return .contacts(try await allContacts())
                }
                return .contacts(try await contacts(of: try resolve(user, caller: caller, admin: admin)))
            case .contactImport(let items):
                try requireAdmin(admin)
                return try await importContacts(items, peer: peer)
            case .codeSend(let user, let channel):
                return try await sendCode(try resolve(user, caller: caller, admin: admin), channel: channel, peer: peer)
            case .policyImpact(let proposed):
                try requireAdmin(admin)
                let current = policy.current
                let evaluated: Policy
                do { evaluated = try proposed.map(Policy.init) ?? current } catch let error as ConfigurationError {
                    throw ControlFailure(.invalidRequest, error.message)
                }
                return .policyImpact(try await PolicyImpactSurvey(store: store, clock: clock).survey(current: current, proposed: evaluated))
            }
        } catch let error as ControlFailure {
            return await refused(request, error, peer: peer)
        } catch StoreError.conflict(let message) {
            return .error(code: .conflict, message: message)
        } catch let error as StoreError {
            logger.log(level: error.isLoggedByStore ? .debug : .error, "control request failed in the store",
                       metadata: ["peer": "\(peer)", "error": "\(error)"])
            switch error {
            case .notEnrolled(let u): return .error(code: .notFound, message: "user '\(u)' has no enrollment in the needed state")
            default: return .error(code: .unavailable, message: error.description)
            }
        } catch let error as CoreError {
            return .error(code: .invalidRequest, message: error.description)
        } catch {
            logger.error("control request failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
            return .error(code: .unavailable, message: "internal error")
        }
    }

    /// The answer to a refused request. A permission refusal is audited (and logged) like every
    /// refusal: a few records a minute per uid, then one aggregate.
    func refused(_ request: ControlRequest, _ error: ControlFailure, peer: PeerCredentials) async -> ControlResponse {
        if error.code == .permissionDenied {
            let mutations = refusals.refused(AuditRecord(timeMillis: clock.nowMillis(), action: request.auditAction, user: request.targetUser,
                                                         peerUID: peer.uid, outcome: "refused", reason: error.message,
                                                         host: request.targetHost ?? peer.relayed?.host))
            if !mutations.isEmpty { _ = await authenticator.commit(mutations) }
        }
        return .error(code: error.code, message: error.message)
    }

    // MARK: - Requests

    private func enrollBegin(_ user: String, currentCode: String?, name: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let record = try await store.user(user)
        let factor = try factorName(name, default: FactorName.next(FactorName.first, taken: Set(record?.factors.map(\.name) ?? [])))
        let current = policy.current
        if record?.status == .active {
            // Re-enrolling needs the current second factor (or an admin): a stolen session alone
            // must not be able to move 2FA to another phone.
            if !admin {
                guard let currentCode else {
                    throw ControlFailure(.conflict, "2FA is already active for '\(user)': give a current code to add or replace a factor, or ask an administrator")
                }
                try await requireCurrentCode(currentCode, user: user, peer: peer, purpose: "re-enrollment")
            }
        } else if !admin {
            let (required, _) = current.requirement(user: user, service: nil, host: HostName.local, override: record?.requirement ?? .policy)
            if !required && !current.document.selfEnrollment {
                throw ControlFailure(.permissionDenied, "policy does not let users turn on 2FA themselves; ask an administrator")
            }
        }
        let offer = try await enrollment.begin(user: user, factor: factor)
        let replaces = record?.factor(factor) != nil
        await audit("enroll", user: user, peer: peer, outcome: "pending", reason: "new secret issued for factor '\(factor)'\(replaces ? " (replaces it once confirmed)" : "")")
        return .enrollment(offer)
    }

    /// A valid factor name, or `fallback` when none was given.
    private func factorName(_ name: String?, default fallback: String) throws -> String {
        guard let name else { return fallback }
        guard FactorName.isValid(name) else {
            throw ControlFailure(.invalidRequest, "a factor name is 1 to \(FactorName.maxLength) of a-z, 0-9, '.', '_', '-' (and not 'recovery')")
        }
        return name
    }

    /// The user's OTP factors, then the recovery set when it has codes.
    func factors(of user: String) async throws -> [FactorInfo] {
        guard let record = try await store.user(user) else { return [] }
        var list = record.factors.map { f in
            FactorInfo(name: f.name, kind: f.kind.rawValue,
                       detail: "\(f.parameters.algorithm.rawValue), \(f.parameters.digits) digits" + (f.kind == .totp ? ", \(f.parameters.period) s" : ""),
                       addedAtMillis: f.addedAtMillis, lastUsedMillis: f.lastUsedMillis)
        }
        if record.recoveryCodesLeft > 0 {
            list.append(FactorInfo(name: RecoveryCodeFactor.setName, kind: FactorKind.recovery.rawValue,
                                   detail: "\(record.recoveryCodesLeft) code\(record.recoveryCodesLeft == 1 ? "" : "s") left",
                                   addedAtMillis: nil, lastUsedMillis: nil, codesLeft: record.recoveryCodesLeft))
        }
        return list
    }

    /// Removes one factor; a user proves a current code first (as for re-enrolling), an admin need not.
    private func removeFactor(_ name: String, of user: String, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        guard let record = try await store.user(user), record.factor(name) != nil else {
            throw ControlFailure(.notFound, "'\(user)' has no factor named '\(name)'")
        }
        if !admin {
            if record.factors.count == 1 && !record.contacts.contains(where: \.isVerified) {
                let (required, because) = policy.current.requirement(user: user, service: nil, override: record.requirement)
                guard !required else { throw ControlFailure(.permissionDenied, "'\(name)' is the last factor and 2FA is required for '\(user)' (\(because))") }
            }
            guard let code else { throw ControlFailure(.invalidRequest, "give a current code of any factor to remove one") }
            try await requireCurrentCode(code, user: user, peer: peer, purpose: "remove factor")
        }
        guard try await store.removeFactor(user: user, name: name) else { throw ControlFailure(.notFound, "'\(user)' has no factor named '\(name)'") }
        await audit("factor", user: user, peer: peer, outcome: "success", reason: "factor '\(name)' removed\(record.factors.count == 1 && record.keys.isEmpty && !record.contacts.contains(where: \.isVerified) ? "; it was the last: recovery codes removed too" : "")")
        return .ok
    }

    private func disable(_ user: String, code: String, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let record = try await store.user(user)
        guard record?.status == .active else { throw ControlFailure(.notFound, "2FA is not active for '\(user)'") }
        let current = policy.current
        let (required, because) = current.requirement(user: user, service: nil, host: HostName.local, override: record?.requirement ?? .policy)
        if !admin {
            guard !required else { throw ControlFailure(.permissionDenied, "2FA is required for '\(user)' (\(because)); it cannot be turned off") }
            guard current.document.allowDisable else { throw ControlFailure(.permissionDenied, "policy does not let users turn 2FA off; ask an administrator") }
        }
        try await requireCurrentCode(code, user: user, peer: peer, purpose: "disable")
        _ = try await store.revoke(user: user)
        await audit("disable", user: user, peer: peer, outcome: "success", reason: "2FA turned off by the user")
        return .ok
    }

    private func importEnrollment(_ user: String, source: ImportSource, name: String?, peer: PeerCredentials) async throws -> ControlResponse {
        let prepared = try prepareImport(user, source: source, name: name)
        try await store.importEnrollment(prepared.record)
        await audit("import", user: user, peer: peer, outcome: "success", reason: prepared.auditReason)
        return .imported(recoveryCodes: prepared.record.recoveryCodes.count)
    }

    /// Many imports: each item is checked on its own; the good ones are stored in one transaction
    /// and audited in one commit.
    private func importEnrollments(_ items: [EnrollmentImport], peer: PeerCredentials) async throws -> ControlResponse {
        guard items.count <= ControlLimits.maxImportsPerRequest else {
            throw ControlFailure(.invalidRequest, "at most \(ControlLimits.maxImportsPerRequest) users per bulk import request")
        }
        var outcomes: [ImportOutcome] = []
        var records: [EnrollmentImportRecord] = []
        var audits: [StoreMutation] = []
        outcomes.reserveCapacity(items.count)
        for item in items {
            do {
                let prepared = try prepareImport(try validName(item.user), source: item.source, name: item.name)
                records.append(prepared.record)
                audits.append(.audit(AuditRecord(timeMillis: prepared.record.atMillis, action: "import", user: item.user, peerUID: peer.uid,
                                                  outcome: "success", reason: prepared.auditReason)))
                outcomes.append(ImportOutcome(user: item.user, recoveryCodes: prepared.record.recoveryCodes.count))
            } catch let failure as ControlFailure {
                outcomes.append(ImportOutcome(user: item.user, error: failure.message))
            } catch let error as CoreError {
                outcomes.append(ImportOutcome(user: item.user, error: error.description))
            }
        }
        try await store.importEnrollments(records)
        if !audits.isEmpty { _ = await authenticator.commit(audits) }
        logger.info("bulk import", metadata: ["peer_uid": "\(peer.uid)", "imported": "\(records.count)", "refused": "\(items.count - records.count)"])
        return .importedMany(outcomes)
    }

    /// Parses and checks one import; the record to store and the audit reason (never the secret).
    private func prepareImport(_ user: String, source: ImportSource, name: String?) throws -> (record: EnrollmentImportRecord, auditReason: String) {
        let factor = try factorName(name, default: FactorName.imported)
        let imported: ImportedEnrollment
        let kind: String
        switch source {
        case .uri(let text):
            let uri = try OTPAuthURI.parse(text)
            imported = ImportedEnrollment(secret: uri.secret, parameters: uri.parameters, counter: uri.counter)
            kind = "otpauth URI"
        case .googleAuthenticator(let text):
            imported = try GoogleAuthenticatorFile.parse(text)
            kind = "google-authenticator file"
        case .usersOath(let text):
            guard let line = text.contains("\n") ? UsersOathLine.line(for: user, in: text) : text else {
                throw ControlFailure(.notFound, "the users.oath text has no line for '\(user)'")
            }
            imported = try UsersOathLine.parse(line, user: user)
            kind = "users.oath line"
        }
        try imported.parameters.validate()
        let hashes = try imported.recoveryCodes.map { try RecoveryCodes.makeHash(canonical: $0, pepper: recoveryPepper) }
        let verify = imported.parameters.method == .hotp ? VerifyState(counter: imported.counter) : VerifyState()
        let notes = imported.notes.isEmpty ? "" : "; " + imported.notes.joined(separator: "; ")
        let record = EnrollmentImportRecord(user: user, factor: factor, secret: imported.secret, parameters: imported.parameters, verify: verify,
                                            recoveryCodes: hashes, atMillis: clock.nowMillis())
        return (record, "factor '\(factor)' imported from \(kind) with \(hashes.count) recovery codes\(notes)")
    }

    /// A current code (or recovery code) for `user`, checked like a login: throttled, single use, audited.
    func requireCurrentCode(_ code: String, user: String, peer: PeerCredentials, purpose: String) async throws {
        let context = LoginContext(user: user, service: "twofoldctl:\(purpose)", peer: peer)
        switch try await authenticator.verifyCode(code, context: context) {
        case .success: return
        case .failure, .replay: throw ControlFailure(.invalidCode, "that code is not valid now")
        case .locked: throw ControlFailure(.locked, "too many failed attempts: the account is locked for now")
        case .tooSoon(let wait): throw ControlFailure(.invalidCode, "too many failed attempts: wait \((wait + 999) / 1000) s and try again")
        case .unavailable: throw ControlFailure(.unavailable, "the daemon cannot check codes right now")
        }
    }

    func status(of user: String) async throws -> UserStatus {
        guard let record = try await store.user(user) else {
            let (required, because) = policy.current.requirement(user: user, service: nil, host: HostName.local, override: .policy)
            return UserStatus(user: user, enrollment: "none", method: nil, required: required, requiredBecause: because,
                              recoveryCodesLeft: 0, failures: 0, lockedUntilMillis: nil, lastSuccessMillis: nil, factors: [], contacts: [],
                              keys: [])
        }
        return status(of: record, lastSuccessHost: try await store.lastSuccessHosts(users: [user])[user])
    }

    func status(of record: UserRecord, lastSuccessHost: String?) -> UserStatus {
        let current = policy.current
        let (required, because) = current.requirement(user: record.name, service: nil, host: HostName.local, override: record.requirement)
        let locked = record.throttle.lockedUntilMillis.flatMap { $0 > clock.nowMillis() ? $0 : nil }
        let grace = record.status == .active ? nil : record.firstRequiredMillis.flatMap(current.graceEnd(firstRequiredMillis:))
        // The kinds of the active factors: the OTP factors' and the verified contacts' (email, sms).
        let kinds = record.kinds.map(\.rawValue).sorted()
        return UserStatus(user: record.name, enrollment: record.status?.rawValue ?? "none",
                          method: kinds.isEmpty ? nil : kinds.joined(separator: ","),
                          required: required, requiredBecause: because, recoveryCodesLeft: record.recoveryCodesLeft,
                          failures: record.throttle.failures, lockedUntilMillis: locked, lastSuccessMillis: record.lastSuccessMillis,
                          override: record.requirement.rawValue, graceUntilMillis: grace, factors: record.factors.map(\.name),
                          lastSuccessHost: lastSuccessHost, contacts: record.contacts.map { Self.info(record.name, $0) },
                          keys: record.keys.map { Self.info(record.name, $0) })
    }

    /// The daemon's setup as it sees it: the files it uses and the key file's mode and owner.
    private func serverInfo() async -> ServerInfo {
        let configuration = live.current
        var mode: UInt32?
        var owner: UInt32?
        let keySource = keys.sealingSource
        let keyFile = keySource == "file" ? configuration.resolvedKeyFile : nil
        let here = policy.current.sshKeyRule(user: nil, host: HostName.local).rule
        var info = stat()
        if let keyFile, stat(keyFile, &info) == 0 {
            mode = UInt32(info.st_mode & 0o7777)
            owner = info.st_uid
        }
        return ServerInfo(version: TwofoldVersion.string, configFile: live.fileRead, database: StoreFactory.location(configuration),
                          keySource: keySource, keyFile: keyFile, keyFileMode: mode, keyFileOwnerUID: owner,
                          daemonUID: getuid(), adminGroup: configuration.adminGroup,
                          sealingKeyID: keys.keyring.sealing.id.hex, previousKeyIDs: keys.keyring.previous.map(\.id.hex),
                          fleet: FleetCheck.serverInfo(configuration.fleet), delivery: await deliveryInfo(configuration),
                          fido2: await fido2Info(configuration),
                          sshKeys: SSHKeysInfo(authorizedKeysUser: configuration.sshKeys.authorizedKeysUser, cacheSeconds: nil,
                                               keyTypes: here.types.rawValue, verifyRequired: here.verifyRequired))
    }

    // MARK: - Authorization

    private static func isAdmin(peer: PeerCredentials, caller: String?, adminGroup: String?) -> Bool {
        if peer.isRoot { return true }
        guard let adminGroup, let caller else { return false }
        return Accounts.groups(of: caller).contains(adminGroup)
    }

    func requireAdmin(_ admin: Bool) throws {
        guard admin else { throw ControlFailure(.permissionDenied, "this command needs root or membership of the admin group") }
    }

    /// The account a user request acts on: the caller's own unless an admin names another.
    private func resolve(_ user: String?, caller: String?, admin: Bool) throws -> String {
        guard let caller else { throw ControlFailure(.permissionDenied, "your uid has no account name") }
        guard let user, user != caller else { return caller }
        guard admin else { throw ControlFailure(.permissionDenied, "you may only act on your own account") }
        return try validName(user)
    }

    private func validName(_ user: String) throws -> String {
        guard LoginDialogRunner.isPlausibleName(user), user.utf8.count <= 256 else { throw ControlFailure(.invalidRequest, "invalid user name") }
        return user
    }

    /// An admin change, audited as a success.
    func auditChange(_ action: String, user: String?, peer: PeerCredentials, reason: String) async {
        await audit(action, user: user, peer: peer, outcome: "success", reason: reason)
    }

    /// Commits an audit record; the authenticator logs it once it is durable (or as not recorded).
    /// `host`: the registered host the record is about; by default the relay's host of a relayed caller.
    func audit(_ action: String, user: String?, peer: PeerCredentials, outcome: String, reason: String?, host: String? = nil) async {
        let record = AuditRecord(timeMillis: clock.nowMillis(), action: action, user: user, peerUID: peer.uid, outcome: outcome, reason: reason,
                                 host: host ?? peer.relayed?.host)
        _ = await authenticator.commit([.audit(record)])
    }
}

/// A refused control request.
struct ControlFailure: Error {
    var code: ControlErrorCode
    var message: String
    init(_ code: ControlErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension ControlRequest {
    /// The audit action under which a refused request is recorded (the same words as its granted form).
    var auditAction: String {
        switch self {
        case .ping: "ping"
        case .enrollBegin, .enrollVerify, .enrollActivate: "enroll"
        case .listFactors, .removeFactor: "factor"
        case .status, .showUser: "status"
        case .regenerateRecoveryCodes: "recovery"
        case .disable: "disable"
        case .listUsers: "users"
        case .setRequirement, .policyShow, .policySet, .policyImpact, .policyExplain, .setFactorKinds, .setSSHKeyRule: "policy"
        case .serverInfo: "info"
        case .metrics: "metrics"
        case .rekey: "rekey"
        case .revoke: "revoke"
        case .unlock: "unlock"
        case .importEnrollment, .importEnrollments: "import"
        case .audit: "audit"
        case .adminSession: "admin-session"
        case .breakGlassIssue, .breakGlassList, .breakGlassClear, .relayAudit: "break-glass"
        case .hostAdd, .hostList, .hostRevoke: "host"
        case .contactAdd, .contactVerify, .contactRemove, .contactList, .contactImport: "contact"
        case .codeSend: "send"
        case .keyBegin, .keyFinish, .keyList, .keyRemove: "key"
        case .sshKeyAdd, .sshKeyList, .sshKeyRemove, .sshKeyImport, .authorizedKeys: "ssh-key"
        case .backupBegin, .backupRead, .backupEnd: "backup"
        }
    }

    /// The same request naming `user` in place of the account it named.
    func naming(_ user: String) -> ControlRequest {
        switch self {
        case .enrollBegin(.some, let code, let name): .enrollBegin(user: user, currentCode: code, name: name)
        case .listFactors(.some): .listFactors(user: user)
        case .removeFactor(.some, let name, let code): .removeFactor(user: user, name: name, code: code)
        case .enrollVerify(.some, let codes): .enrollVerify(user: user, codes: codes)
        case .enrollActivate(.some): .enrollActivate(user: user)
        case .status(.some): .status(user: user)
        case .regenerateRecoveryCodes(.some, let code): .regenerateRecoveryCodes(user: user, code: code)
        case .disable(.some, let code): .disable(user: user, code: code)
        case .showUser: .showUser(user: user)
        case .policyExplain(_, let service, let host): .policyExplain(user: user, service: service, host: host)
        case .setRequirement(_, let setting): .setRequirement(user: user, requirement: setting)
        case .setFactorKinds(_, let kinds): .setFactorKinds(user: user, kinds: kinds)
        case .setSSHKeyRule(_, let rule): .setSSHKeyRule(user: user, rule: rule)
        case .revoke: .revoke(user: user)
        case .unlock: .unlock(user: user)
        case .importEnrollment(_, let source, let name): .importEnrollment(user: user, source: source, name: name)
        case .audit(.some, let since, let outcome, let limit, let host, let action):
            .audit(user: user, sinceMillis: since, outcome: outcome, limit: limit, host: host, action: action)
        case .contactAdd(.some, let channel, let value, let code): .contactAdd(user: user, channel: channel, value: value, code: code)
        case .contactVerify(.some, let code): .contactVerify(user: user, code: code)
        case .contactRemove(.some, let channel, let value, let code): .contactRemove(user: user, channel: channel, value: value, code: code)
        case .contactList(.some, let all): .contactList(user: user, all: all)
        case .codeSend(.some, let channel): .codeSend(user: user, channel: channel)
        case .keyBegin(.some, let name, let code): .keyBegin(user: user, name: name, code: code)
        case .keyList(.some, let all): .keyList(user: user, all: all)
        case .keyRemove(.some, let name, let code): .keyRemove(user: user, name: name, code: code)
        case .sshKeyAdd(.some, let name, let line, let code): .sshKeyAdd(user: user, name: name, line: line, code: code)
        case .sshKeyList(.some, let all): .sshKeyList(user: user, all: all)
        case .sshKeyRemove(.some, let name, let code): .sshKeyRemove(user: user, name: name, code: code)
        case .authorizedKeys: .authorizedKeys(user: user)
        default: self
        }
    }

    /// The account the request names, if any.
    var targetUser: String? {
        switch self {
        case .enrollBegin(let user, _, _), .enrollVerify(let user, _), .enrollActivate(let user), .status(let user),
             .regenerateRecoveryCodes(let user, _), .disable(let user, _), .listFactors(let user), .removeFactor(let user, _, _):
            user
        case .showUser(let user), .setRequirement(let user, _), .revoke(let user), .unlock(let user), .importEnrollment(let user, _, _),
             .policyExplain(let user, _, _), .setFactorKinds(let user, _), .setSSHKeyRule(let user, _):
            user
        case .audit(let user, _, _, _, _, _), .contactAdd(let user, _, _, _), .contactVerify(let user, _), .contactRemove(let user, _, _, _),
             .contactList(let user, _), .codeSend(let user, _), .keyBegin(let user, _, _), .keyList(let user, _), .keyRemove(let user, _, _),
             .sshKeyAdd(let user, _, _, _), .sshKeyList(let user, _), .sshKeyRemove(let user, _, _):
            user
        case .authorizedKeys(let user):
            user
        case .ping, .listUsers, .policyShow, .policySet, .importEnrollments, .serverInfo, .policyImpact, .rekey, .adminSession, .hostAdd, .hostList,
             .hostRevoke, .breakGlassIssue, .breakGlassList, .breakGlassClear, .relayAudit, .metrics, .contactImport, .keyFinish, .sshKeyImport,
             .backupBegin, .backupRead, .backupEnd:
            nil
        }
    }

    /// The registered host the request names, if any.
    var targetHost: String? {
        switch self {
        case .hostAdd(let name, _, _, _), .hostRevoke(let name): HostIdentity.normalizedName(name)
        default: nil
        }
    }
}
