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

    private let open = Mutex<[ObjectIdentifier: Open]>([:])
    private let counts = Mutex<[String: Int]>([:])
    private let limit: @Sendable () -> Int

    init(limit: @escaping @Sendable () -> Int) {
        self.limit = limit
    }

    /// Counts a connection of `host`; false (nothing counted) when the host is at its cap.
    /// Its close gives the slot back.
    func admit(_ channel: Channel, host: String, fingerprint: String) -> Bool {
        let cap = limit()
        let admitted = counts.withLock { counts -> Bool in
            guard counts[host, default: 0] < cap else { return false }
            counts[host, default: 0] += 1
            return true
        }
        guard admitted else { return false }
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = Open(channel: channel, host: host, fingerprint: fingerprint) }
        channel.closeFuture.whenComplete { _ in
            self.open.withLock { _ = $0.removeValue(forKey: id) }
            self.counts.withLock { counts in
                counts[host, default: 1] -= 1
                if counts[host] == 0 { counts.removeValue(forKey: host) }
            }
        }
        return true
    }

    /// Ends every connection made with one of `fingerprints`: a started dialog gets its verdict
    /// (DENIED) first. Returns the hosts whose connections were ended.
    @discardableResult
    func end(fingerprints: Set<String>) -> Set<String> {
        let ending = open.withLock { $0.values.filter { fingerprints.contains($0.fingerprint) } }
        for connection in ending {
            let channel = connection.channel
            channel.pipeline.fireUserInboundEventTriggered(DialogCutOff(verdict: .denied, reason: "the host's certificate was revoked"))
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
        return Set(ending.map(\.host))
    }

    /// Connections open per host (for tests and status).
    var perHost: [String: Int] { counts.withLock { $0 } }
}
