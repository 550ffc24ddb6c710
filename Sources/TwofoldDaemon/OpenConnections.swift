import NIOCore
import Synchronization

/// The connections a server has open, so that shutdown can wait for them (`drained`) and end the
/// ones still open after its grace period (`closeAll`).
final class OpenConnections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Counts an open connection until it closes.
    func track(_ channel: Channel) {
        let id = ObjectIdentifier(channel)
        state.withLock { $0.open[id] = channel }
        channel.closeFuture.whenComplete { _ in
            let waiters = self.state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.open.removeValue(forKey: id)
                guard s.open.isEmpty else { return [] }
                defer { s.drainWaiters = [] }
                return s.drainWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Ends every connection still open: a started login dialog gets `reason`'s verdict first.
    func closeAll(reason: String) {
        let remaining = state.withLock { Array($0.open.values) }
        for channel in remaining {
            channel.pipeline.fireUserInboundEventTriggered(DialogCutOff(verdict: .unavailable, reason: reason))
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    /// Returns once no connection is open.
    func drained() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { s -> Bool in
                if s.open.isEmpty { return true }
                s.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
