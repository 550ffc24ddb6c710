import Logging
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Who is logging in, where from, and which process asked.
public struct LoginContext: Sendable {
    public var user: String
    public var service: String
    public var rhost: String?
    public var tty: String?
    public var peer: PeerCredentials

    public init(user: String, service: String, rhost: String? = nil, tty: String? = nil, peer: PeerCredentials) {
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.peer = peer
    }
}

/// What a login needs once the dialog has started.
public enum LoginStart: Sendable {
    /// Neither enrolled nor required: the module returns PAM_IGNORE.
    case ignore
    /// Refused before asking anything (peer not allowed, required but not enrolled). The text is for the user.
    case denied(userMessage: String?)
    /// Locked until the given time.
    case locked(untilMillis: Int64)
    /// Ask for a code; carry the record into `check`.
    case askCode(UserRecord)
    /// The store failed; nothing can be decided.
    case unavailable
}

/// The result of checking an answer.
public enum LoginResult: Sendable, Equatable {
    /// Proven; `info` is shown to the user (e.g. recovery codes left).
    case success(info: String?)
    /// Wrong, replayed or malformed.
    case failure
    /// This failure locked the user.
    case locked(untilMillis: Int64)
    case unavailable
}

/// Decides logins: whether a code is needed, and whether an answer proves the second factor.
/// Every state change goes through one `TwofoldStore.commit` (group-committed, durable before return),
/// together with its audit record.
public final class Authenticator: Sendable {
    let store: any TwofoldStore
    let clock: any WallClock
    let configuration: DaemonConfiguration
    let recoveryPepper: SecretBytes
    let logger: Logger

    public init(store: any TwofoldStore, clock: any WallClock, configuration: DaemonConfiguration,
                recoveryPepper: SecretBytes, logger: Logger) {
        self.store = store
        self.clock = clock
        self.configuration = configuration
        self.recoveryPepper = recoveryPepper
        self.logger = logger
    }

    /// Whether `user` must use a second factor, and why.
    public func requirement(for user: String, override: RequirementOverride) -> (required: Bool, because: String) {
        switch override {
        case .required: return (true, "admin override: required")
        case .exempt: return (false, "admin override: exempt")
        case .policy: break
        }
        switch configuration.require {
        case .nobody: return (false, "policy: nobody is required")
        case .everyone: return (true, "policy: everyone is required")
        case .groups:
            let groups = Accounts.groups(of: user)
            if let group = configuration.requiredGroups.first(where: groups.contains) {
                return (true, "policy: member of group \(group)")
            }
            return (false, "policy: not in a required group")
        }
    }

    /// Starts a login: looks the user up and decides what to ask.
    public func begin(_ context: LoginContext) async -> LoginStart {
        let record: UserRecord?
        do {
            record = try await store.user(context.user)
        } catch {
            logger.error("cannot read user state", metadata: ["user": "\(context.user)", "error": "\(error)"])
            await audit(context, outcome: "error", reason: "store: \(Self.reason(error))")
            return .unavailable
        }
        guard let record, record.status == .active, record.secret != nil else {
            let (required, because) = requirement(for: context.user, override: record?.requirement ?? .policy)
            if required {
                await audit(context, outcome: "denied", reason: "required but not enrolled (\(because))")
                return .denied(userMessage: "Two-factor authentication is required for this account, but it is not set up. Ask your administrator.")
            }
            await audit(context, outcome: "ignored", reason: "not enrolled, not required")
            return .ignore
        }
        let now = clock.nowMillis()
        if case .locked(let until) = Throttle.admit(record.throttle, nowMillis: now, policy: configuration.throttlePolicy) {
            await audit(context, outcome: "locked", reason: "locked until \(until)")
            return .locked(untilMillis: until)
        }
        return .askCode(record)
    }

    /// Checks an answer to the code prompt: a one-time code, or a recovery code.
    public func check(answer: String, record: UserRecord, context: LoginContext) async -> LoginResult {
        // A throttle delay from an earlier failure must pass before this answer is looked at.
        if let notBefore = record.throttle.notBeforeMillis {
            let wait = min(notBefore - clock.nowMillis(), configuration.throttleMaxDelayMillis)
            if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
        }
        if RecoveryCodes.looksLikeRecoveryCode(answer) {
            return await checkRecoveryCode(answer, context: context)
        }
        guard let secret = record.secret else { return .failure }
        let now = clock.nowMillis()
        let outcome = CodeChecker.check(code: answer, secret: secret, parameters: record.parameters,
                                        state: record.verify, nowMillis: now, policy: configuration.windowPolicy)
        switch outcome {
        case .accepted(let step, let offset, let newState):
            let mutation: StoreMutation = record.parameters.method == .totp
                ? .acceptTOTP(user: context.user, step: step, newVerify: newState, atMillis: now)
                : .acceptHOTP(user: context.user, counter: UInt64(step), atMillis: now)
            let results = await commit([mutation, auditMutation(context, outcome: "success", reason: "code at offset \(offset)", at: now)])
            switch results?.first {
            case .applied?:
                return .success(info: nil)
            case nil:
                return .unavailable
            default:
                // Another login took this step first (or the user was revoked meanwhile): a replay.
                return await fail(context, reason: "replayed code (concurrent use)")
            }
        case .replay:
            return await fail(context, reason: "replayed code")
        case .rejected:
            return await fail(context, reason: "wrong code")
        case .malformed:
            return await fail(context, reason: answer.isEmpty ? "empty answer" : "malformed code")
        }
    }

    private func checkRecoveryCode(_ answer: String, context: LoginContext) async -> LoginResult {
        let candidates: [(index: Int, hash: RecoveryCodeHash)]
        do {
            candidates = try await store.recoveryCodes(user: context.user)
        } catch {
            logger.error("cannot read recovery codes", metadata: ["user": "\(context.user)", "error": "\(error)"])
            return .unavailable
        }
        guard let index = RecoveryCodes.match(answer, against: candidates, pepper: recoveryPepper) else {
            return await fail(context, reason: "wrong recovery code")
        }
        let now = clock.nowMillis()
        let left = candidates.count - 1
        let results = await commit([
            .consumeRecoveryCode(user: context.user, index: index, atMillis: now),
            auditMutation(context, outcome: "success", reason: "recovery code used, \(left) left", at: now),
        ])
        switch results?.first {
        case .applied?:
            let plural = left == 1 ? "code" : "codes"
            return .success(info: "Recovery code accepted. You have \(left) recovery \(plural) left." + (left <= 3 ? " Make new ones with: twofoldctl recovery-codes" : ""))
        case nil:
            return .unavailable
        default:
            return await fail(context, reason: "recovery code already used")
        }
    }

    private func fail(_ context: LoginContext, reason: String) async -> LoginResult {
        let now = clock.nowMillis()
        let results = await commit([
            .recordFailure(user: context.user, atMillis: now, policy: configuration.throttlePolicy),
            auditMutation(context, outcome: "failure", reason: reason, at: now),
        ])
        if case .appliedFailure(let state)? = results?.first, let until = state.lockedUntilMillis, until > now {
            logger.warning("user locked after repeated failures", metadata: ["user": "\(context.user)", "failures": "\(state.failures)"])
            return .locked(untilMillis: until)
        }
        return results == nil ? .unavailable : .failure
    }

    /// Commits and logs a store failure; nil when the store failed.
    private func commit(_ mutations: [StoreMutation]) async -> [MutationResult]? {
        do {
            return try await store.commit(mutations)
        } catch {
            logger.error("store commit failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func auditMutation(_ context: LoginContext, outcome: String, reason: String?, at now: Int64) -> StoreMutation {
        .audit(AuditRecord(timeMillis: now, action: "verify", user: context.user, service: context.service,
                           rhost: context.rhost, tty: context.tty, peerUID: context.peer.uid, outcome: outcome, reason: reason))
    }

    /// Records a verify-path event that changes no other state (denied, ignored, abandoned).
    public func audit(_ context: LoginContext, outcome: String, reason: String?) async {
        let now = clock.nowMillis()
        logger.info("login", metadata: ["user": "\(context.user)", "service": "\(context.service)",
                                        "peer_uid": "\(context.peer.uid)", "outcome": "\(outcome)", "reason": "\(reason ?? "")"])
        _ = await commit([auditMutation(context, outcome: outcome, reason: reason, at: now)])
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? StoreError { return e.description }
        return String(describing: type(of: error))
    }
}
