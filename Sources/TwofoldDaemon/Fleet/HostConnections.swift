import NIOCore
import Synchronization

/// The tier connections each host holds: a cap per host, so one host cannot take the slots of the
/// others, and the channels to end when a host's certificate is revoked.
final class HostConnections: Sendable {
    private struct Open {
        var channel: Channel
        var host: String
        var fingerprint: String
    }

    /// The open connections, and how many each host holds (derived from them, kept for the cap's O(1) check).
    private struct State {
        var open: [ObjectIdentifier: Open] = [:]
        var counts: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let limit: @Sendable () -> Int

    init(limit: @escaping @Sendable () -> Int) {
        self.limit = limit
    }

    /// Counts a connection of `host`; false (nothing counted) when the host is at its cap.
    /// Its close gives the slot back.
    func admit(_ channel: Channel, host: String, fingerprint: String) -> Bool {
        let cap = limit()
        let id = ObjectIdentifier(channel)
        let admitted = state.withLock { state -> Bool in
            guard state.counts[host, default: 0] < cap else { return false }
            state.counts[host, default: 0] += 1
            state.open[id] = Open(channel: channel, host: host, fingerprint: fingerprint)
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { _ in
            self.state.withLock { state in
                state.open.removeValue(forKey: id)
                state.counts[host, default: 1] -= 1
                if state.counts[host] == 0 { state.counts.removeValue(forKey: host) }
            }
        }
        return true
    }

    /// Ends every connection made with one of `fingerprints`: a started dialog gets its verdict
    /// (DENIED) first. Returns the hosts whose connections were ended.
    @discardableResult
    func end(fingerprints: Set<String>) -> Set<String> {
        let ending = state.withLock { $0.open.values.filter { fingerprints.contains($0.fingerprint) } }
        for connection in ending {
            let channel = connection.channel
            channel.pipeline.fireUserInboundEventTriggered(DialogCutOff(verdict: .denied, reason: "the host's certificate was revoked"))
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
        return Set(ending.map(\.host))
    }
}
