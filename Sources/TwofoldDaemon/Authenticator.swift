import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// Who is logging in, where from, which process asked, and how long it waits for an answer.
public struct LoginContext: Sendable {
    public var user: String
    public var service: String
    public var rhost: String?
    public var tty: String?
    public var ruser: String?
    public var peer: PeerCredentials
    /// How long the client waits for each message of the daemon (AUTH_START's DEADLINE): no answer
    /// is held longer than that, so a wait never turns into "daemon unavailable" at the module.
    public var clientWaitMillis: Int64
    /// Whether the client is still there to hear the verdict (nil: a caller that always is).
    public var liveness: DialogLiveness?
    /// What the client can carry beyond text prompts (AUTH_START's CAPABILITIES, known bits only;
    /// `[]` when the field is absent). The factor layer offers a factor only if the client can
    /// carry it: `capabilities.contains(.binaryPayload)` before a binary challenge (FIDO2). Every
    /// factor today is text, so nothing depends on it yet.
    public var capabilities: ClientCapabilities
    /// The host the login is on: this one, or the relay's host (by its certificate). The policy's
    /// host level and the audit use it.
    public var host: String
    /// The host an audit record names: a relayed login's; nil for this host's own, so a single host
    /// (and a server's own logins) add no entry to the index of logins by host on every success.
    var auditHost: String? { peer.relayed?.host }
    /// The user's groups as the relay's host resolved them (nil: look them up here, through NSS).
    /// A host's claim decides only logins on that host.
    public var claimedGroups: Set<String>?

    /// What the module waits by default (its `timeout=10`), for clients that do not say.
    public static let defaultClientWaitMillis: Int64 = 10_000

    /// When the dialog began (AUTH_START arrived): the client waits `clientWaitMillis` from about then.
    public var began: ContinuousClock.Instant

    public init(user: String, service: String, rhost: String? = nil, tty: String? = nil, ruser: String? = nil,
                peer: PeerCredentials, clientWaitMillis: Int64 = LoginContext.defaultClientWaitMillis, liveness: DialogLiveness? = nil,
                capabilities: ClientCapabilities = []) {
        self.began = .now
        self.host = peer.relayed?.host ?? HostName.local
        self.claimedGroups = peer.relayed?.context.userGroups.map(Set.init)
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.ruser = ruser
        self.peer = peer
        self.clientWaitMillis = clientWaitMillis
        self.liveness = liveness
        self.capabilities = capabilities.knownOnly
    }

    /// The context of a login dialog opened by `start`: its PAM items, its DEADLINE (10 s when
    /// absent) and its CAPABILITIES (unknown bits dropped; none when absent, today's text-only dialog).
    public init(start: AuthStart, peer: PeerCredentials, liveness: DialogLiveness? = nil) {
        self.init(user: start.user, service: start.service, rhost: start.rhost, tty: start.tty, ruser: start.ruser, peer: peer,
                  clientWaitMillis: Int64(start.deadlineMillis ?? UInt32(LoginContext.defaultClientWaitMillis)), liveness: liveness,
                  capabilities: start.capabilities ?? [])
    }

    /// The longest the daemon may hold an answer (a throttle delay) and still answer in time: the
    /// client's wait less a second for the commit and the trip back.
    var holdBudgetMillis: Int64 { max(0, clientWaitMillis - 1_000) }

    /// Until when a decision made at the start of the dialog may wait for its audit record: half
    /// the client's wait for the daemon's first message. The decision is known, the record is
    /// bookkeeping, and the other half is the margin: a decision that reached the client after
    /// its timeout would read as "unavailable", which failmode=open lets through.
    var recordsBy: ContinuousClock.Instant { began + .milliseconds(Self.recordWaitMillis(clientWaitMillis)) }

    /// `recordsBy` for the connection handler's sweep (NIO's clock), from when the dialog began there.
    static func recordsBy(began: NIODeadline, clientWaitMillis: Int64) -> NIODeadline {
        began + .milliseconds(recordWaitMillis(clientWaitMillis))
    }

    /// How long a decision at a dialog's start waits for its audit record: half the client's wait.
    static func recordWaitMillis(_ clientWaitMillis: Int64) -> Int64 { clientWaitMillis / 2 }

    /// True once the client has gone (closed, or the daemon gave up on its deadline).
    var clientGone: Bool { liveness?.isGone ?? false }
}

/// Whether a dialog's client is still there to hear the verdict. Set on the connection's loop when
/// it closes; read wherever the answer is evaluated.
public final class DialogLiveness: Sendable {
    private let gone = Atomic<Bool>(false)
    public init() {}
    public func markGone() { gone.store(true, ordering: .relaxed) }
    public var isGone: Bool { gone.load(ordering: .relaxed) }
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
    /// Wrong or malformed.
    case failure
    /// A code already used (by this login's user, or by a concurrent one): a failure, counted as one.
    case replay
    /// This failure locked the user, or the user was locked.
    case locked(untilMillis: Int64)
    /// A throttle delay had longer to run than the client waits: not checked, not counted.
    case tooSoon(retryAfterMillis: Int64)
    case unavailable
}

/// A decision that may need the store, or time, before it is final. `Authenticator.run(_:)` drives
/// one in async code; the connection handler drives it on its event loop without leaving it
/// except for the commit (and the rare `.async` path).
public enum LoginStep<Result: Sendable>: Sendable {
    /// Decided.
    case done(Result)
    /// Commit `mutations` durably (group commit), then continue with their results (nil: the store failed).
    case commit([StoreMutation], then: @Sendable ([MutationResult]?) -> LoginStep<Result>)
    /// Commit `mutations`, the audit record of something already decided, then `result` whatever
    /// the commit's outcome (a failed audit commit is logged, not fatal). A dialog's start waits for
    /// it only for half the client's wait (a stalled disk): the connection handler then answers
    /// `result` and the record is stored when the disk answers.
    case record([StoreMutation], then: Result)
    /// Wait `millis` (a throttle delay), then continue.
    case delay(millis: Int64, then: @Sendable () -> LoginStep<Result>)
    /// A rare path that only exists as async code (recovery codes, grace bookkeeping).
    case async(@Sendable () async -> Result)
}

/// Decides logins: whether a code is needed, and whether an answer proves the second factor.
/// Every state change goes through one `TwofoldStore.commit` (group-committed, durable before
/// return) together with its audit record.
public final class Authenticator: Sendable {
    let store: any TwofoldStore
    let clock: any WallClock
    let policy: PolicyHolder
    let recoveryPepper: SecretBytes
    let metrics: DaemonMetrics
    let logger: Logger
    /// The FIDO2 settings in force (a reload may change them).
    let keySettings: @Sendable () -> Fido2Configuration

    public init(store: any TwofoldStore, clock: any WallClock, policy: PolicyHolder, recoveryPepper: SecretBytes, metrics: DaemonMetrics,
                logger: Logger, keySettings: @escaping @Sendable () -> Fido2Configuration = { Fido2Configuration() }) {
        self.keySettings = keySettings
        self.store = store
        self.clock = clock
        self.policy = policy
        self.recoveryPepper = recoveryPepper
        self.metrics = metrics
        self.logger = logger
    }

    /// Starts a login: looks the user up and decides what to ask.
    public func begin(_ context: LoginContext) async -> LoginStart {
        let read: Result<UserRecord?, StoreError>
        do {
            if store.isShared {
                // Another daemon may have changed the policy: read it with the user's record.
                let (record, policyText) = try await store.loginRecord(context.user, setting: PolicyHolder.settingKey)
                policy.stored(policyText)
                read = .success(record)
            } else {
                read = .success(try await store.user(context.user))
            }
        } catch {
            read = .failure(error as? StoreError ?? .database(Self.reason(error)))
        }
        return await run(startStep(context, read: read), recordsBy: context.recordsBy)
    }

    /// Decides what a login asks, given the outcome of reading the user's record. Returns the
    /// decision with the audit record it needs committed first.
    public func startStep(_ context: LoginContext, read: Result<UserRecord?, StoreError>) -> LoginStep<LoginStart> {
        let record: UserRecord?
        switch read {
        case .success(let found):
            record = found
        case .failure(let error):
            metrics.storeError(error)
            logger.log(level: error.isLoggedByStore ? .debug : .error, "cannot read user state",
                       metadata: ["user": "\(context.user)", "error": "\(error)"])
            if error.isLoggedByStore {
                // The database is down: the audit commit would wait out the same bounds and fail, so
                // the verdict goes now and the record to the journal only, as not recorded.
                logUnrecorded(auditMutation(context, outcome: "error", reason: "store: \(error.description)", at: clock.nowMillis()), error: error)
                return .done(.unavailable)
            }
            return audited(context, outcome: "error", reason: "store: \(error.description)", then: .unavailable)
        }
        let policy = self.policy.current
        guard let record, record.hasFactor else {
            return notEnrolled(context, override: record?.requirement ?? .policy, policy: policy)
        }
        if case .locked(let until) = Throttle.admit(record.throttle, nowMillis: clock.nowMillis(), policy: policy.throttlePolicy) {
            return audited(context, outcome: "locked", reason: "locked", then: .locked(untilMillis: until))
        }
        // Only the factor kinds this login may use count; with none of them the login cannot go on.
        let allowed = policy.allowedKinds(user: record.factorKinds, service: context.service, host: context.host)
        func noneAllowed() -> LoginStep<LoginStart> {
            let kinds = FactorKind.allCases.filter(allowed.kinds.contains).map(\.rawValue).joined(separator: ", ")
            return audited(context, outcome: "denied", reason: "no factor of a kind allowed for this login (\(allowed.because))",
                           then: .denied(userMessage: "None of your second factors may be used for this login (allowed here: \(kinds)). Ask your administrator."))
        }
        if record.factors.isEmpty && !record.hasFactor(ofKindIn: allowed.kinds) {
            // Only contacts, none of a kind allowed here: a required user gets what one without a
            // factor gets (enroll at login, grace, deny); one not required is refused as before.
            return notEnrolled(context, override: record.requirement, policy: policy, unrequired: noneAllowed())
        }
        guard allowed.kinds.contains(.recovery) || record.hasFactor(ofKindIn: allowed.kinds) else { return noneAllowed() }
        // Only for users with keys: everyone else pays nothing here, and is never told about keys.
        if !record.keys.isEmpty, let why = keysUnusable(context), !record.hasFactor(ofKindIn: allowed.kinds.subtracting([.fido2])) {
            return onlyKeys(context, why: why, record: record, recoveryAllowed: allowed.kinds.contains(.recovery))
        }
        if record.throttle.failures > 0, context.peer.relayed != nil {
            return .async { await self.withinHostQuota(context, record: record, policy: policy) }
        }
        return .done(.askCode(record))
    }

    /// A user without a factor this login may use: the requirement decides, with the user's groups
    /// as the relay's host claimed them, or from NSS (maybe LDAP or sssd) on NIO's thread pool when
    /// the policy needs them, not on the event loop that serves every other login.
    /// `unrequired`: the decision when the user is not required (nil: ignore).
    private func notEnrolled(_ context: LoginContext, override: RequirementOverride, policy: Policy,
                             unrequired: LoginStep<LoginStart>? = nil) -> LoginStep<LoginStart> {
        if let claimed = context.claimedGroups {
            return notEnrolled(context, override: override, policy: policy, groups: { _ in claimed }, unrequired: unrequired)
        }
        if policy.needsGroups(service: context.service, host: context.host, override: override) {
            return .async {
                let user = context.user
                let groups = (try? await NIOThreadPool.singleton.runIfActive { Accounts.groups(of: user) }) ?? []
                return await self.run(self.notEnrolled(context, override: override, policy: policy, groups: { _ in groups }, unrequired: unrequired),
                                      recordsBy: context.recordsBy)
            }
        }
        return notEnrolled(context, override: override, policy: policy, groups: Accounts.groups(of:), unrequired: unrequired)
    }

    /// A user without an active enrollment: ignored unless required.
    private func notEnrolled(_ context: LoginContext, override: RequirementOverride, policy: Policy,
                             groups: (String) -> Set<String>, unrequired: LoginStep<LoginStart>?) -> LoginStep<LoginStart> {
        let (required, because) = policy.requirement(user: context.user, service: context.service, host: context.host,
                                                     override: override, groups: groups)
        guard required else {
            return unrequired ?? audited(context, outcome: "ignored", reason: "not enrolled, not required (\(because))", then: .ignore)
        }
        return unenrolledRequired(context, because: because, policy: policy)
    }

    private func unenrolledRequired(_ context: LoginContext, because: String, policy: Policy) -> LoginStep<LoginStart> {
        switch policy.unenrolled {
        case .deny:
            return audited(context, outcome: "denied", reason: "required but not enrolled (\(because))",
                           then: .denied(userMessage: "Two-factor authentication is required for this account, but it is not set up. Ask your administrator."))
        case .enroll where context.peer.relayed == nil || policy.admitsEnrollment(on: context.host):
            return .done(.enroll)
        case .enroll:
            // A host that shows the QR code sees the new secret: enrolling is for the servers and the
            // hosts the policy opens to it (`enrollHosts`), never for any host that relays a login.
            return audited(context, outcome: "denied", reason: "required, not enrolled; enrollment is not open on host \(context.host)",
                           then: .denied(userMessage: "Two-factor authentication is required for this account, but it is not set up, and it cannot be set up on this host. Ask your administrator."))
        case .grace:
            return .async { await self.graceStart(context, because: because, policy: policy) }
        }
    }

    private func graceStart(_ context: LoginContext, because: String, policy: Policy) async -> LoginStart {
        let now = clock.nowMillis()
        let first: Int64
        do {
            first = try await store.markFirstRequired(user: context.user, atMillis: now)
        } catch {
            logger.error("cannot record when 2FA became required", metadata: ["user": "\(context.user)", "error": "\(error)"])
            return .unavailable
        }
        guard let end = policy.graceEnd(firstRequiredMillis: first), now < end else {
            await auditBeforeDeadline(context, outcome: "denied", reason: "required, not enrolled, grace period over (\(because))")
            return .denied(userMessage: "Two-factor authentication is required for this account and the grace period is over. Ask your administrator.")
        }
        let days = Int((end - now + 86_399_999) / 86_400_000)
        let date = Date(timeIntervalSince1970: Double(end) / 1000).formatted(.iso8601.year().month().day())
        await auditBeforeDeadline(context, outcome: "grace", reason: "required, not enrolled, \(days) day(s) of grace left")
        return .grace(notice: "Two-factor authentication will be required for this account in \(days) day\(days == 1 ? "" : "s") (from \(date)). Set it up now with: twofoldctl enroll")
    }

    /// What the code prompt offers by delivered codes for this login.
    func deliveryOffer(_ record: UserRecord, context: LoginContext) -> DeliveryOffer {
        let allowed = policy.current.allowedKinds(user: record.factorKinds, service: context.service, host: context.host).kinds
        return DeliveryOffer.plan(record, allowed: allowed, host: context.host, service: context.service, nowMillis: clock.nowMillis())
    }

    /// Checks an answer to the code prompt: a one-time code of one of the user's factors, or a recovery code.
    public func check(answer: String, record: UserRecord, context: LoginContext) async -> LoginResult {
        await run(answerStep(answer: answer, record: record, context: context))
    }

    /// `check` as steps: the throttle delay, the check itself, and the commit that makes an
    /// accepted code (or a counted failure) durable before the result is known. The delay is held
    /// only as long as the client waits; a longer one is answered at once (`tooSoon`), unchecked.
    /// The store decides the lock and the delay again where the attempt commits (parallel dialogs).
    public func answerStep(answer: String, record: UserRecord, context: LoginContext) -> LoginStep<LoginResult> {
        let policy = self.policy.current
        return afterThrottleDelay(record.throttle, context: context, policy: policy) {
            self.evaluate(answer: answer, record: record, context: context, policy: policy)
        }
    }

    /// `check` once the user's throttle delay has run, held here only as long as the client waits.
    func afterThrottleDelay(_ throttle: ThrottleState, context: LoginContext, policy: Policy,
                            check: @escaping @Sendable () -> LoginStep<LoginResult>) -> LoginStep<LoginResult> {
        guard let notBefore = throttle.notBeforeMillis else { return check() }
        let wait = min(notBefore - clock.nowMillis(), policy.throttlePolicy.maxDelayMillis)
        if wait > 0 { metrics.throttled(millis: wait) }
        if wait > context.holdBudgetMillis {
            return audited(context, outcome: "throttled",
                           reason: "answer came \(wait) ms before the throttle delay ended; not checked",
                           then: .tooSoon(retryAfterMillis: wait))
        }
        return wait > 0 ? .delay(millis: wait, then: check) : check()
    }

    /// Checks the answer against every OTP factor of the user at once (the verdict and the audit
    /// record do not say which failed), or against the recovery codes when no OTP factor claims its form.
    private func evaluate(answer: String, record: UserRecord, context: LoginContext, policy: Policy) -> LoginStep<LoginResult> {
        // Factors of a kind this login may not use are left out, as if the user had none of them.
        let allowed = policy.allowedKinds(user: record.factorKinds, service: context.service, host: context.host).kinds
        var factors = record.factors.filter { allowed.contains($0.kind) }.compactMap { $0.factor() }
        if let code = record.deliveredCode, allowed.contains(code.channel.factorKind) {
            // twofoldctl's requests name their purpose ("twofoldctl:contact"); a code sent for
            // twofoldctl (`codeSend`) serves any of them on the host it was sent for.
            let service = context.service.hasPrefix(ControlService.cliService + ":") ? ControlService.cliService : context.service
            factors.append(DeliveredCodeFactor(record: code, pepper: recoveryPepper, host: context.host, service: service))
        }
        if !FactorSet.claims(answer, factors: factors), RecoveryCodeFactor.claims(answer), allowed.contains(.recovery) {
            return .async { await self.checkRecoveryCode(answer, context: context, policy: policy) }
        }
        let now = clock.nowMillis()
        switch FactorSet.check(answer, factors: factors, nowMillis: now, policy: policy.windowPolicy) {
        case .accepted(let use):
            if context.clientGone {
                // Nobody hears a verdict: no login, but the code is used up (no replay later).
                return .commit([.consume(user: context.user, use: use),
                                auditMutation(context, outcome: "abandoned", reason: "right code, but the client gave up before the verdict; code used up", at: now)]) { results in
                    .done(results == nil ? .unavailable : .failure)
                }
            }
            let accept = StoreMutation.accept(user: context.user, use: use, atMillis: now, policy: policy.throttlePolicy)
            return .commit([accept, .auditAttempt(attemptRecord(context, reason: Self.describe(use), at: now))]) { results in
                self.attemptResult(results, context: context, policy: policy, success: .success(info: nil))
            }
        case .replay:
            return failStep(context, reason: "replayed code", policy: policy, replay: true)
        case .rejected:
            return failStep(context, reason: "wrong code", policy: policy)
        case .malformed:
            return failStep(context, reason: answer.isEmpty ? "empty answer" : "malformed code", policy: policy)
        }
    }

    /// The audit reason of a success: it may name the factor that matched (never one that failed).
    static func describe(_ use: FactorUse) -> String {
        switch use {
        case .timeStep(let factor, _, let offset, _), .counter(let factor, _, let offset): "code at offset \(offset), factor '\(factor)'"
        case .recoveryCode: "recovery code used"
        case .deliveredCode(let channel, _): "code delivered by \(channel.noun)"
        case .keyAssertion(let name, _, let count): "security key '\(name)', counter \(count)"
        }
    }

    /// What an accepting commit means for the login. Its audit record was resolved in the store.
    func attemptResult(_ results: [MutationResult]?, context: LoginContext, policy: Policy, success: LoginResult) -> LoginStep<LoginResult> {
        switch results?.first {
        case .applied?:
            return .done(success)
        case nil:
            return .done(.unavailable)
        case .throttled(let state)?:
            if let until = state.lockedUntilMillis, until > clock.nowMillis() { return .done(.locked(untilMillis: until)) }
            return .done(.failure)
        case .appliedFailure?, .conflict?:
            // Another login took this step first (or the user was revoked meanwhile): a replay,
            // counted as a failure (already audited as one).
            return failStep(context, reason: "replayed code (concurrent use)", policy: policy, audit: false, replay: true)
        }
    }

    /// Checks a code for a control request (re-enroll, new recovery codes, disable): the same
    /// throttle, replay protection and audit as a login.
    public func verifyCode(_ code: String, context: LoginContext) async throws -> LoginResult {
        guard let record = try await store.user(context.user), record.hasFactor else {
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
            metrics.storeError(error)
            logger.error("cannot read recovery codes", metadata: ["user": "\(context.user)", "error": "\(error)"])
            return .unavailable
        }
        guard case .accepted(let use) = RecoveryCodeFactor(unused: candidates, pepper: recoveryPepper)
            .check(answer, nowMillis: clock.nowMillis(), policy: policy.windowPolicy) else {
            return await run(failStep(context, reason: "wrong recovery code", policy: policy))
        }
        let now = clock.nowMillis()
        if context.clientGone {
            // A recovery code is long-lived and unguessable: it stays unused for its owner.
            await audit(context, outcome: "abandoned", reason: "right recovery code, but the client gave up before the verdict; not used")
            return .failure
        }
        let left = candidates.count - 1
        let plural = left == 1 ? "code" : "codes"
        let hint = left <= 3 ? " Make a new set with: twofoldctl recovery-codes" : ""
        let success = LoginResult.success(info: "Recovery code accepted. You have \(left) recovery \(plural) left.\(hint)")
        let results = await commit([
            .accept(user: context.user, use: use, atMillis: now, policy: policy.throttlePolicy),
            .auditAttempt(attemptRecord(context, reason: "recovery code used, \(left) left", at: now)),
        ])
        return await run(attemptResult(results, context: context, policy: policy, success: success))
    }

    /// Counts a failure durably, with its audit record unless the caller's commit already wrote one;
    /// the result says whether it locked the user, and whether the code was a replay.
    func failStep(_ context: LoginContext, reason: String, policy: Policy, audit: Bool = true, replay: Bool = false) -> LoginStep<LoginResult> {
        let now = clock.nowMillis()
        var mutations: [StoreMutation] = [.recordFailure(user: context.user, atMillis: now, policy: policy.throttlePolicy)]
        if audit { mutations.append(auditMutation(context, outcome: "failure", reason: reason, at: now)) }
        return .commit(mutations) { results in
            if case .appliedFailure(let state)? = results?.first, let until = state.lockedUntilMillis, until > now {
                self.logger.warning("user locked after repeated failures", metadata: ["user": "\(context.user)", "failures": "\(state.failures)"])
                self.metrics.userLocked()
                return .done(.locked(untilMillis: until))
            }
            return .done(results == nil ? .unavailable : replay ? .replay : .failure)
        }
    }

    /// Drives `step` to its result in async code. With `recordsBy` (a dialog's start), a `.record`
    /// waits for its commit only until then: the decision goes to the client, the record is
    /// stored (and logged) when the store answers.
    public func run<Result>(_ step: LoginStep<Result>, recordsBy: ContinuousClock.Instant? = nil) async -> Result {
        var step = step
        while true {
            switch step {
            case .done(let result):
                return result
            case .commit(let mutations, let then):
                step = then(await commit(mutations))
            case .record(let mutations, let result):
                if let recordsBy {
                    await commit(mutations, waitingUntil: recordsBy)
                } else {
                    _ = await commit(mutations)
                }
                return result
            case .delay(let millis, let then):
                try? await Task.sleep(for: .milliseconds(millis))
                step = then()
            case .async(let work):
                return await work()
            }
        }
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? StoreError { return e.description }
        return String(describing: type(of: error))
    }
}
