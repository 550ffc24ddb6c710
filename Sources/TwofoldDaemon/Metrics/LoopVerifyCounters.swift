import NIOCore
import Prometheus

/// `twofold_verifies_total` and `twofold_verify_duration_seconds` for the login dialogs of one
/// event loop. The labelled counters are cached by outcome, service and host, so that counting a
/// login is a dictionary lookup and an atomic add: no lock, no allocation. A value over the label
/// limit ("other") is not cached, so a peer inventing service names cannot grow the cache; those
/// go through the family's lock every time.
final class LoopVerifyCounters: @unchecked Sendable {
    private struct Key: Hashable {
        let outcome: VerifyOutcome
        let service: String
        let host: String
    }

    // Used only on `loop` (checked), so never from two threads.
    private var cached: [Key: Counter] = [:]
    private let metrics: DaemonMetrics
    let loop: any EventLoop

    init(_ metrics: DaemonMetrics, loop: any EventLoop) {
        self.metrics = metrics
        self.loop = loop
    }

    /// Counts a login dialog that began (AUTH_START) at `began` and ended with `outcome`.
    func verified(_ outcome: VerifyOutcome, service: String, host: String, began: NIODeadline) {
        loop.preconditionInEventLoop()
        let key = Key(outcome: outcome, service: service, host: host)
        if let counter = cached[key] {
            counter.increment()
        } else {
            let (counter, exact) = metrics.verifies.counter([outcome.rawValue, service, host])
            if exact { cached[key] = counter }
            counter.increment()
        }
        metrics.verifyDuration.record(.nanoseconds((NIODeadline.now() - began).nanoseconds))
    }
}
