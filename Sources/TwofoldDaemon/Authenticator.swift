import Foundation
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
    /// Required but in a grace period: let the stack decide (PAM_IGNORE) after showing `notice`.
    case grace(notice: String)
    /// Refused before asking anything. The text is for the user.
    case denied(userMessage: String?)
    /// Locked until the given time.
    case locked(untilMillis: Int64)
    /// Ask for a code; carry the record into `check`.
    case askCode(UserRecord)
    /// Required, not enrolled, and policy says enroll at login.
    case enroll
    /// The store failed; nothing can be decided.
    case unavailable
}

/// The result of checking an answer.
public enum LoginResult: Sendable, Equatable {
    /// Proven; `info` is shown to the user (e.g. recovery codes left).
    case success(info: String?)
    /// Wrong, replayed or malformed.
    case failure
    /// This failure locked the user, or the user was locked.
    case locked(untilMillis: Int64)
    case unavailable
}

/// Decides logins: whether a code is needed, and whether an answer proves the second factor.
/// Every state change goes through one `TwofoldStore.commit` (group-committed, durable before
/// return) together with its audit record.
public final class Authenticator: Sendable {
    let store: any TwofoldStore
    let clock: any WallClock
    let policy: PolicyHolder
    let recoveryPepper: SecretBytes
    let logger: Logger

    public init(store: any TwofoldStore, clock: any WallClock, policy: PolicyHolder, recoveryPepper: SecretBytes, logger: Logger) {
        self.store = store
        self.clock = clock
        self.policy = policy
        self.recoveryPepper = recoveryPepper
        self.logger = logger
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
        let policy = self.policy.current
        guard let record, record.status == .active, record.secret != nil else {
            let (required, because) = policy.requirement(user: context.user, service: context.service, override: record?.requirement ?? .policy)
            guard required else {
                await audit(context, outcome: "ignored", reason: "not enrolled, not required (\(because))")
                return .ignore
            }
            return await unenrolledRequired(context, because: because, policy: policy)
        }
        if case .locked(let until) = Throttle.admit(record.throttle, nowMillis: clock.nowMillis(), policy: policy.throttlePolicy) {
            await audit(context, outcome: "locked", reason: "locked")
            return .locked(untilMillis: until)
        }
        return .askCode(record)
    }

    private func unenrolledRequired(_ context: LoginContext, because: String, policy: Policy) async -> LoginStart {
        switch policy.unenrolled {
        case .deny:
            await audit(context, outcome: "denied", reason: "required but not enrolled (\(because))")
            return .denied(userMessage: "Two-factor authentication is required for this account, but it is not set up. Ask your administrator.")
        case .enroll:
            return .enroll
        case .grace:
            let now = clock.nowMillis()
            let first: Int64
            do {
                first = try await store.markFirstRequired(user: context.user, atMillis: now)
            } catch {
                logger.error("cannot record when 2FA became required", metadata: ["user": "\(context.user)", "error": "\(error)"])
                return .unavailable
            }
            guard let end = policy.graceEnd(firstRequiredMillis: first), now < end else {
                await audit(context, outcome: "denied", reason: "required, not enrolled, grace period over (\(because))")
                return .denied(userMessage: "Two-factor authentication is required for this account and the grace period is over. Ask your administrator.")
            }
            let days = Int((end - now + 86_399_999) / 86_400_000)
            let date = Date(timeIntervalSince1970: Double(end) / 1000).formatted(.iso8601.year().month().day())
            await audit(context, outcome: "grace", reason: "required, not enrolled, \(days) day(s) of grace left")
            return .grace(notice: "Two-factor authentication will be required for this account in \(days) day\(days == 1 ? "" : "s") (from \(date)). Set it up now with: twofoldctl enroll")
        }
    }

    /// Checks an answer to the code prompt: a one-time code of the enrollment's length, or a recovery code.
    public func check(answer: String, record: UserRecord, context: LoginContext) async -> LoginResult {
        let policy = self.policy.current
        // A throttle delay from an earlier failure must pass before this answer is looked at.
        if let notBefore = record.throttle.notBeforeMillis {
            let wait = min(notBefore - clock.nowMillis(), policy.throttlePolicy.maxDelayMillis)
            if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
        }
        if CodeInput.normalize(answer, digits: record.parameters.digits) == nil,
           RecoveryCodes.canonical(answer) != nil || RecoveryCodes.scratchCanonical(answer) != nil {
            return await checkRecoveryCode(answer, context: context, policy: policy)
        }
        guard let secret = record.secret else { return .failure }
        let now = clock.nowMillis()
        let outcome = CodeChecker.check(code: answer, secret: secret, parameters: record.parameters,
                                        state: record.verify, nowMillis: now, policy: policy.windowPolicy)
        switch outcome {
        case .accepted(let step, let offset, let newState):
            let mutation: StoreMutation = record.parameters.method == .totp
                ? .acceptTOTP(user: context.user, step: step, newVerify: newState, atMillis: now)
                : .acceptHOTP(user: context.user, counter: UInt64(step), atMillis: now)
            let results = await commit([mutation, auditMutation(context, outcome: "success", reason: "code at offset \(offset)", at: now)])
            switch results?.first {
            case .applied?: return .success(info: nil)
            case nil: return .unavailable
            // Another login took this step first (or the user was revoked meanwhile): a replay.
            default: return await fail(context, reason: "replayed code (concurrent use)", policy: policy)
            }
        case .replay:
            return await fail(context, reason: "replayed code", policy: policy)
        case .rejected:
            return await fail(context, reason: "wrong code", policy: policy)
        case .malformed:
            return await fail(context, reason: answer.isEmpty ? "empty answer" : "malformed code", policy: policy)
        }
    }

    /// Checks a code for a control request (re-enroll, new recovery codes, disable): the same
    /// throttle, replay protection and audit as a login.
    public func verifyCode(_ code: String, context: LoginContext) async throws -> LoginResult {
        guard let record = try await store.user(context.user), record.status == .active else {
            throw ControlFailure(.notFound, "'\(context.user)' has no active 2FA enrollment")
        }
        if case .locked(let until) = Throttle.admit(record.throttle, nowMillis: clock.nowMillis(), policy: policy.current.throttlePolicy) {
            return .locked(untilMillis: until)
        }
        return await check(answer: code, record: record, context: context)
    }

    private func checkRecoveryCode(_ answer: String, context: LoginContext, policy: Policy) async -> LoginResult {
        let candidates: [(index: Int, hash: RecoveryCodeHash)]
        do {
            candidates = try await store.recoveryCodes(user: context.user)
        } catch {
            logger.error("cannot read recovery codes", metadata: ["user": "\(context.user)", "error": "\(error)"])
            return .unavailable
        }
        guard let index = RecoveryCodes.match(answer, against: candidates, pepper: recoveryPepper) else {
            return await fail(context, reason: "wrong recovery code", policy: policy)
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
            let hint = left <= 3 ? " Make a new set with: twofoldctl recovery-codes" : ""
            return .success(info: "Recovery code accepted. You have \(left) recovery \(plural) left.\(hint)")
        case nil:
            return .unavailable
        default:
            return await fail(context, reason: "recovery code already used", policy: policy)
        }
    }

    private func fail(_ context: LoginContext, reason: String, policy: Policy) async -> LoginResult {
        let now = clock.nowMillis()
        let results = await commit([
            .recordFailure(user: context.user, atMillis: now, policy: policy.throttlePolicy),
            auditMutation(context, outcome: "failure", reason: reason, at: now),
        ])
        if case .appliedFailure(let state)? = results?.first, let until = state.lockedUntilMillis, until > now {
            logger.warning("user locked after repeated failures", metadata: ["user": "\(context.user)", "failures": "\(state.failures)"])
            return .locked(untilMillis: until)
        }
        return results == nil ? .unavailable : .failure
    }

    /// Commits; nil when the store failed (logged).
    func commit(_ mutations: [StoreMutation]) async -> [MutationResult]? {
        do {
            return try await store.commit(mutations)
        } catch {
            logger.error("store commit failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// An audit record for the verify path, also written to the log.
    func auditMutation(_ context: LoginContext, outcome: String, reason: String?, at now: Int64, action: String = "verify") -> StoreMutation {
        logger.info("\(action)", metadata: ["user": "\(context.user)", "service": "\(context.service)", "rhost": "\(context.rhost ?? "")",
                                            "peer_uid": "\(context.peer.uid)", "outcome": "\(outcome)", "reason": "\(reason ?? "")"])
        return .audit(AuditRecord(timeMillis: now, action: action, user: context.user, service: context.service,
                                  rhost: context.rhost, tty: context.tty, peerUID: context.peer.uid, outcome: outcome, reason: reason))
    }

    /// Records an event that changes no other state (denied, ignored, abandoned, enrollment steps).
    public func audit(_ context: LoginContext, outcome: String, reason: String?, action: String = "verify") async {
        _ = await commit([auditMutation(context, outcome: outcome, reason: reason, at: clock.nowMillis(), action: action)])
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? StoreError { return e.description }
        return String(describing: type(of: error))
    }
}
