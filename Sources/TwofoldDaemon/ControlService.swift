import Foundation
import Logging
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// Answers control requests (enrollment, status, admin). Users act on their own account; admin
/// requests need root or membership of the configured admin group. Every change is audited.
public final class ControlService: Sendable {
    let store: any TwofoldStore
    let authenticator: Authenticator
    let clock: any WallClock
    let configuration: DaemonConfiguration
    let recoveryPepper: SecretBytes
    let logger: Logger

    public init(store: any TwofoldStore, authenticator: Authenticator, clock: any WallClock,
                configuration: DaemonConfiguration, recoveryPepper: SecretBytes, logger: Logger) {
        self.store = store
        self.authenticator = authenticator
        self.clock = clock
        self.configuration = configuration
        self.recoveryPepper = recoveryPepper
        self.logger = logger
    }

    /// Decodes, authorizes and runs one request; always returns a RESPONSE frame.
    func handle(json: [UInt8], peer: PeerCredentials) async -> Message {
        let response: ControlResponse
        if let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(json)) {
            response = await handle(request, peer: peer)
        } else {
            response = .error(code: .invalidRequest, message: "the request is not a valid control request")
        }
        let bytes = (try? JSONEncoder().encode(response)).map { Array($0) } ?? Array(#"{"error":{"code":"unavailable","message":"encoding failed"}}"#.utf8)
        return .response(bytes)
    }

    /// Runs one decoded request for `peer`.
    public func handle(_ request: ControlRequest, peer: PeerCredentials) async -> ControlResponse {
        let caller = Accounts.name(of: peer.uid)
        let admin = isAdmin(peer: peer, caller: caller)
        do {
            switch request {
            case .ping:
                return .ok
            case .enrollBegin(let user):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await enrollBegin(target, peer: peer, admin: admin)
            case .enrollConfirm(let user, let code):
                let target = try resolve(user, caller: caller, admin: admin)
                return try await enrollConfirm(target, code: code, peer: peer)
            case .status(let user):
                let target = try resolve(user, caller: caller, admin: admin)
                return .status(try await status(of: target))
            case .importURI(let user, let uri):
                try requireAdmin(admin)
                return try await importURI(user, uri: uri, peer: peer)
            case .revoke(let user):
                try requireAdmin(admin)
                let removed = try await store.revoke(user: user)
                await audit(action: "revoke", user: user, peer: peer, outcome: removed ? "success" : "noop", reason: removed ? nil : "nothing to revoke")
                return removed ? .ok : .error(code: .notFound, message: "user '\(user)' has no enrollment")
            case .unlock(let user):
                try requireAdmin(admin)
                try await store.unlock(user: user)
                await audit(action: "unlock", user: user, peer: peer, outcome: "success", reason: nil)
                return .ok
            case .listUsers(let after, let limit):
                try requireAdmin(admin)
                let records = try await store.listUsers(after: after, limit: min(max(limit, 1), 10_000))
                return .users(records.map(status(of:)))
            case .audit(let user, let since, let outcome, let limit):
                try requireAdmin(admin)
                let records = try await store.audit(AuditQuery(user: user, sinceMillis: since, outcome: outcome, limit: min(max(limit, 1), 100_000)))
                return .audit(records.map {
                    AuditEntry(timeMillis: $0.timeMillis, action: $0.action, user: $0.user, service: $0.service, rhost: $0.rhost,
                               tty: $0.tty, peerUID: $0.peerUID, outcome: $0.outcome, reason: $0.reason)
                })
            }
        } catch let error as ControlFailure {
            if error.code == .permissionDenied {
                logger.warning("control request refused", metadata: ["peer": "\(peer)", "reason": "\(error.message)"])
            }
            return .error(code: error.code, message: error.message)
        } catch let error as StoreError {
            logger.error("control request failed in the store", metadata: ["peer": "\(peer)", "error": "\(error)"])
            switch error {
            case .notEnrolled(let u): return .error(code: .notFound, message: "user '\(u)' has no pending enrollment")
            default: return .error(code: .unavailable, message: error.description)
            }
        } catch let error as CoreError {
            return .error(code: .invalidRequest, message: error.description)
        } catch {
            logger.error("control request failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
            return .error(code: .unavailable, message: "internal error")
        }
    }

    // MARK: - Requests

    private func enrollBegin(_ user: String, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        if let record = try await store.user(user), record.status == .active, !admin {
            throw ControlFailure(.conflict, "2FA is already active for '\(user)'; an administrator must revoke it before you enroll again")
        }
        let parameters = configuration.newEnrollment
        let secret = try OTPSecret.generate()
        let now = clock.nowMillis()
        try await store.beginEnrollment(user: user, secret: secret, parameters: parameters, atMillis: now)
        let uri = OTPAuthURI(issuer: configuration.issuer, account: user, secret: secret, parameters: parameters)
        var raw = secret.copyBytes()
        defer { Crypto.wipe(&raw) }
        await audit(action: "enroll", user: user, peer: peer, outcome: "pending", reason: "new secret issued")
        return .enrollment(EnrollmentOffer(user: user, uri: uri.uriString(), secretBase32: Base32.encode(raw),
                                           digits: parameters.digits, period: parameters.period, algorithm: parameters.algorithm.rawValue))
    }

    private func enrollConfirm(_ user: String, code: String, peer: PeerCredentials) async throws -> ControlResponse {
        guard let pending = try await store.pendingEnrollment(user: user) else {
            throw ControlFailure(.notFound, "no enrollment is waiting for confirmation; run 'twofoldctl enroll' first")
        }
        let outcome = CodeChecker.check(code: code, secret: pending.secret, parameters: pending.parameters,
                                        state: VerifyState(), nowMillis: clock.nowMillis(), policy: configuration.windowPolicy)
        guard case .accepted(let step, _, let newState) = outcome else {
            await audit(action: "enroll", user: user, peer: peer, outcome: "failure", reason: "confirmation code did not match")
            throw ControlFailure(.invalidCode, "that code does not match the new secret; check the app's clock and try the current code")
        }
        var verify = newState
        if pending.parameters.method == .hotp { verify = VerifyState(counter: UInt64(step) + 1) }
        let codes = try RecoveryCodes.generate()
        let hashes = try codes.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: recoveryPepper) }
        try await store.activateEnrollment(user: user, recoveryCodes: hashes, verify: verify, atMillis: clock.nowMillis())
        await audit(action: "enroll", user: user, peer: peer, outcome: "success", reason: "enrollment confirmed")
        return .recoveryCodes(codes)
    }

    private func importURI(_ user: String, uri text: String, peer: PeerCredentials) async throws -> ControlResponse {
        let uri = try OTPAuthURI.parse(text)
        try uri.parameters.validate()
        let verify = uri.parameters.method == .hotp ? VerifyState(counter: uri.counter) : VerifyState()
        try await store.importEnrollment(user: user, secret: uri.secret, parameters: uri.parameters, verify: verify,
                                         recoveryCodes: [], atMillis: clock.nowMillis())
        await audit(action: "import", user: user, peer: peer, outcome: "success", reason: "imported from otpauth URI")
        return .ok
    }

    func status(of user: String) async throws -> UserStatus {
        guard let record = try await store.user(user) else {
            let (required, because) = authenticator.requirement(for: user, override: .policy)
            return UserStatus(user: user, enrollment: "none", method: nil, required: required, requiredBecause: because,
                              recoveryCodesLeft: 0, failures: 0, lockedUntilMillis: nil, lastSuccessMillis: nil)
        }
        return status(of: record)
    }

    func status(of record: UserRecord) -> UserStatus {
        let (required, because) = authenticator.requirement(for: record.name, override: record.requirement)
        let locked = record.throttle.lockedUntilMillis.flatMap { $0 > clock.nowMillis() ? $0 : nil }
        return UserStatus(user: record.name, enrollment: record.status?.rawValue ?? "none",
                          method: record.status == .active ? record.parameters.method.rawValue : nil,
                          required: required, requiredBecause: because, recoveryCodesLeft: record.recoveryCodesLeft,
                          failures: record.throttle.failures, lockedUntilMillis: locked, lastSuccessMillis: record.lastSuccessMillis)
    }

    // MARK: - Authorization

    private func isAdmin(peer: PeerCredentials, caller: String?) -> Bool {
        if peer.isRoot { return true }
        guard let group = configuration.adminGroup, let caller else { return false }
        return Accounts.groups(of: caller).contains(group)
    }

    private func requireAdmin(_ admin: Bool) throws {
        guard admin else { throw ControlFailure(.permissionDenied, "this command needs root or membership of the admin group") }
    }

    /// The account a user request acts on: the caller's own unless an admin names another.
    private func resolve(_ user: String?, caller: String?, admin: Bool) throws -> String {
        guard let caller else { throw ControlFailure(.permissionDenied, "your uid has no account name") }
        guard let user, user != caller else { return caller }
        guard admin else { throw ControlFailure(.permissionDenied, "you may only act on your own account") }
        guard LoginDialogRunner.isPlausibleName(user), user.utf8.count <= 256 else { throw ControlFailure(.invalidRequest, "invalid user name") }
        return user
    }

    private func audit(action: String, user: String, peer: PeerCredentials, outcome: String, reason: String?) async {
        let record = AuditRecord(timeMillis: clock.nowMillis(), action: action, user: user, peerUID: peer.uid, outcome: outcome, reason: reason)
        logger.info("\(action)", metadata: ["user": "\(user)", "peer_uid": "\(peer.uid)", "outcome": "\(outcome)", "reason": "\(reason ?? "")"])
        do { _ = try await store.commit([.audit(record)]) } catch {
            logger.error("audit write failed", metadata: ["error": "\(error)"])
        }
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
