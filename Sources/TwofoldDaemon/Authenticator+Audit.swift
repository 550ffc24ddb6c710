import Logging
import Synchronization
import TwofoldStore

/// The authenticator's durable side: every state change and its audit record go through one
/// group-committed `TwofoldStore.commit`, and each audit record is logged once its commit is
/// durable (or as not recorded). Deciding logins is in Authenticator.swift.
extension Authenticator {
    /// `result`, once the audit record of the event is committed (a failed audit commit is logged, not
    /// fatal; a dialog's start waits for it only for half its client's wait).
    public func audited<Result>(_ context: LoginContext, outcome: String, reason: String?, action: String = "verify",
                                then result: Result) -> LoginStep<Result> {
        .record([auditMutation(context, outcome: outcome, reason: reason, at: clock.nowMillis(), action: action)], then: result)
    }

    /// Commits for a caller that is not async; `completion` gets the results, or nil when the store
    /// failed (logged). It runs on the store's thread, which also logs the batch's audit records:
    /// the event loop neither formats nor writes log lines.
    public func commit(_ mutations: [StoreMutation], completion: @escaping @Sendable ([MutationResult]?) -> Void) {
        store.commit(mutations) { result in
            switch result {
            case .success(let results):
                self.logAudits(mutations, results: results, error: nil)
                completion(results)
            case .failure(let error):
                self.metrics.storeError(error)
                self.logAudits(mutations, results: nil, error: error)
                completion(nil)
            }
        }
    }

    /// Logs an audit record the store could not take (it is unreachable), as not recorded.
    func logUnrecorded(_ mutation: StoreMutation, error: StoreError) {
        logAudits([mutation], results: nil, error: error)
    }

    /// Commits; nil when the store failed (logged).
    func commit(_ mutations: [StoreMutation]) async -> [MutationResult]? {
        do {
            let results = try await store.commit(mutations)
            logAudits(mutations, results: results, error: nil)
            return results
        } catch {
            metrics.storeError(error)
            logAudits(mutations, results: nil, error: error)
            return nil
        }
    }

    /// Every audit record also goes to the log, once its commit is durable (so the log never shows
    /// an outcome the store does not have); after a failed commit, with the error, as not recorded.
    fileprivate func logAudits(_ mutations: [StoreMutation], results: [MutationResult]?, error: (any Error)?) {
        if let error {
            logger.log(level: (error as? StoreError)?.isLoggedByStore == true ? .debug : .error, "store commit failed", metadata: ["error": "\(error)"])
        }
        for (index, mutation) in mutations.enumerated() {
            let r: AuditRecord
            switch mutation {
            case .audit(let record): r = record
            case .auditAttempt(let record): r = record.resolved(after: index > 0 ? results?[index - 1] : nil)
            default: continue
            }
            var metadata: Logger.Metadata = ["user": "\(r.user ?? "")", "service": "\(r.service ?? "")", "rhost": "\(r.rhost ?? "")",
                                             "peer_uid": "\(r.peerUID.map(String.init) ?? "")", "outcome": "\(r.outcome)", "reason": "\(r.reason ?? "")"]
            if let host = r.host { metadata["host"] = "\(host)" }
            if error == nil {
                logger.info("\(r.action)", metadata: metadata)
            } else {
                metadata["recorded"] = "no"
                logger.error("\(r.action)", metadata: metadata)
            }
        }
    }

    /// The audit record of an attempt that succeeds unless the store refuses it (`auditAttempt`).
    func attemptRecord(_ context: LoginContext, reason: String, at now: Int64) -> AuditRecord {
        AuditRecord(timeMillis: now, action: "verify", user: context.user, service: context.service,
                    rhost: context.rhost, tty: context.tty, peerUID: context.peer.uid, outcome: "success", reason: reason,
                    host: context.auditHost)
    }

    /// An audit record for the verify path (logged when committed).
    func auditMutation(_ context: LoginContext, outcome: String, reason: String?, at now: Int64, action: String = "verify") -> StoreMutation {
        .audit(auditRecord(context, outcome: outcome, reason: reason, at: now, action: action))
    }

    func auditRecord(_ context: LoginContext, outcome: String, reason: String?, at now: Int64? = nil, action: String = "verify") -> AuditRecord {
        AuditRecord(timeMillis: now ?? clock.nowMillis(), action: action, user: context.user, service: context.service,
                    rhost: context.rhost, tty: context.tty, peerUID: context.peer.uid, outcome: outcome, reason: reason,
                    host: context.auditHost)
    }

    /// Records an event that changes no other state (denied, ignored, abandoned, enrollment steps).
    public func audit(_ context: LoginContext, outcome: String, reason: String?, action: String = "verify") async {
        _ = await commit([auditMutation(context, outcome: outcome, reason: reason, at: clock.nowMillis(), action: action)])
    }

    /// `audit` for a decision at the start of a dialog: waits for the record at most until
    /// `context.recordsBy`, half the client's wait (a stalled disk), so that the decision reaches
    /// the client well before it gives up; the record is stored when the store answers.
    func auditBeforeDeadline(_ context: LoginContext, outcome: String, reason: String?) async {
        await commit([auditMutation(context, outcome: outcome, reason: reason, at: clock.nowMillis())], waitingUntil: context.recordsBy)
    }

    /// Commits `mutations` (audit records), waiting at most until `deadline`; the commit goes on
    /// after that, and its records are logged when it is durable (or as not recorded).
    func commit(_ mutations: [StoreMutation], waitingUntil deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiter = OnceResumed(continuation)
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                guard !Task.isCancelled, waiter.resume() else { return }
                let users = Set(mutations.compactMap { mutation -> String? in
                    if case .audit(let record) = mutation { return record.user }
                    return nil
                })
                self.logger.warning("audit record not stored within half the client's wait; answered without waiting for it",
                                    metadata: ["user": "\(users.sorted().joined(separator: ","))"])
            }
            commit(mutations) { _ in
                timer.cancel()
                _ = waiter.resume()
            }
        }
    }
}

/// A continuation resumed by whichever comes first (a commit or a deadline), exactly once.
private final class OnceResumed: Sendable {
    private let continuation: Mutex<CheckedContinuation<Void, Never>?>

    init(_ continuation: CheckedContinuation<Void, Never>) {
        self.continuation = Mutex(continuation)
    }

    /// Resumes the waiter unless that was done already; true if this call did.
    func resume() -> Bool {
        guard let waiting = continuation.withLock({ value -> CheckedContinuation<Void, Never>? in
            defer { value = nil }
            return value
        }) else { return false }
        waiting.resume()
        return true
    }
}
