import Logging
import Synchronization
import TwofoldCore
import TwofoldStore

/// Audits refused requests (a peer asking about another user, a request over a limit, an admin
/// request from a non-admin) without letting one uid flood the audit table or the journal: each
/// uid gets `perMinute` records a minute; the rest of that minute is counted and written as one
/// aggregate record ("N more refused requests from uid U") when the minute is over.
final class RefusalAuditor: Sendable {
    private struct Window {
        var startMillis: Int64
        var recorded = 0
        var suppressed = 0
    }

    private let commit: @Sendable ([StoreMutation]) -> Void
    private let clock: any WallClock
    private let perMinute: @Sendable () -> Int
    private let windows = Mutex<[UInt32: Window]>([:])
    static let windowMillis: Int64 = 60_000

    /// `commit` makes records durable and logs them (the authenticator's audited commit).
    init(clock: any WallClock, perMinute: @escaping @Sendable @autoclosure () -> Int, commit: @escaping @Sendable ([StoreMutation]) -> Void) {
        self.clock = clock
        self.perMinute = perMinute
        self.commit = commit
    }

    var nowMillis: Int64 { clock.nowMillis() }

    /// What to commit for `record` (its `peerUID` says who was refused): the record unless that uid
    /// used up its minute, and the aggregate of a minute that is over; often nothing. The caller
    /// commits it (and may answer once it is durable, as for any audited event).
    func refused(_ record: AuditRecord) -> [StoreMutation] {
        let uid = record.peerUID ?? 0
        let now = clock.nowMillis()
        let (write, aggregate) = windows.withLock { w -> (Bool, AuditRecord?) in
            var window = w[uid] ?? Window(startMillis: now)
            var aggregate: AuditRecord?
            if now - window.startMillis >= Self.windowMillis {
                aggregate = Self.aggregate(window, uid: uid, at: now)
                window = Window(startMillis: now)
            }
            let write = window.recorded < perMinute()
            if write { window.recorded += 1 } else { window.suppressed += 1 }
            w[uid] = window
            return (write, aggregate)
        }
        var mutations: [StoreMutation] = aggregate.map { [.audit($0)] } ?? []
        if write { mutations.append(.audit(record)) }
        return mutations
    }

    /// `refused(_:)`, committed in the background.
    func record(_ record: AuditRecord) {
        let mutations = refused(record)
        if !mutations.isEmpty { commit(mutations) }
    }

    /// Writes the aggregates of minutes that are over and forgets quiet uids (call it every minute;
    /// with `all`, at shutdown, every pending aggregate).
    func flush(all: Bool = false) {
        let now = clock.nowMillis()
        let aggregates = windows.withLock { w -> [AuditRecord] in
            var out: [AuditRecord] = []
            for (uid, window) in w where all || now - window.startMillis >= Self.windowMillis {
                if let record = Self.aggregate(window, uid: uid, at: now) { out.append(record) }
                w.removeValue(forKey: uid)
            }
            return out
        }
        if !aggregates.isEmpty { commit(aggregates.map { .audit($0) }) }
    }

    private static func aggregate(_ window: Window, uid: UInt32, at now: Int64) -> AuditRecord? {
        guard window.suppressed > 0 else { return nil }
        return AuditRecord(timeMillis: now, action: "refused", peerUID: uid, outcome: "refused",
                           reason: "\(window.suppressed) more refused requests from uid \(uid) in the minute before (not recorded one by one)")
    }
}
