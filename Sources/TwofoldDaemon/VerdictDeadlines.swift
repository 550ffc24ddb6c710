import NIOCore

/// Verdicts owed by a deadline (an answer whose commit has not come back shortly before its client
/// stops waiting). One sweep every 250 ms on the socket loop rather than a timer per answer: a NIO
/// timer per answer cost about half again as much daemon CPU per verify at 64 clients (A/B).
final class VerdictDeadlines: @unchecked Sendable {
    static let sweepInterval = TimeAmount.milliseconds(250)

    // Used only on `loop` (checked), so never from two threads.
    private var due: [ObjectIdentifier: (deadline: NIODeadline, expire: () -> Void)] = [:]
    let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Calls `expire` at the first sweep after `deadline`, unless `clear(id)` came first.
    func watch(_ id: ObjectIdentifier, until deadline: NIODeadline, _ expire: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        due[id] = (deadline, expire)
    }

    func clear(_ id: ObjectIdentifier) {
        loop.preconditionInEventLoop()
        due.removeValue(forKey: id)
    }

    func sweep() {
        loop.preconditionInEventLoop()
        guard !due.isEmpty else { return }
        let now = NIODeadline.now()
        let expired = due.filter { $0.value.deadline <= now }
        for (id, entry) in expired {
            due.removeValue(forKey: id)
            entry.expire()
        }
    }
}
