import Foundation
import Logging
import Synchronization
import TwofoldCore

/// A relay's copy of the SSH key lines the tier last served for each user, so that an outage of
/// the tier does not lock hardware-key users out of every host. A line is served from here only
/// while no server answers and only for `lifetime` after the tier gave it: that bounds how long a
/// revoked key keeps working during an outage. Public keys only; kept in the relay's state
/// directory so a relay restarted during an outage still has it.
final class SSHKeyCache: Sendable {
    struct Entry: Codable, Sendable, Equatable {
        var lines: [String]
        var fetchedMillis: Int64
        /// When this entry was last written to the file (in memory only; nil: never).
        var persistedMillis: Int64?

        private enum CodingKeys: String, CodingKey { case lines, fetchedMillis }
    }

    private let entries: Mutex<[String: Entry]>
    private let path: String
    private let clock: any WallClock
    private let lifetimeSeconds: @Sendable () -> Int
    private let logger: Logger
    /// One writer, in order: a later snapshot is never overwritten by an earlier one.
    private let writer = DispatchQueue(label: "twofold.ssh-key-cache")

    init(path: String, clock: any WallClock, logger: Logger, lifetimeSeconds: @escaping @Sendable () -> Int) {
        self.path = path
        self.clock = clock
        self.logger = logger
        self.lifetimeSeconds = lifetimeSeconds
        let stored = (try? Data(contentsOf: URL(fileURLWithPath: path))).flatMap { try? JSONDecoder().decode([String: Entry].self, from: $0) }
        entries = Mutex(lifetimeSeconds() > 0 ? stored ?? [:] : [:])
        if lifetimeSeconds() == 0 { try? FileManager.default.removeItem(atPath: path) }
    }

    /// What the tier just served for `user` (an empty list too: a revocation reaches the cache).
    /// sshd asks on every connection attempt, so the file is rewritten only when the lines changed
    /// or the time it holds is a tenth of the lifetime old: a restarted relay may then expire an
    /// entry a little early, never late.
    func store(_ user: String, lines: [String]) {
        let lifetime = Int64(lifetimeSeconds()) * 1_000
        guard lifetime > 0 else { return }
        let now = clock.nowMillis()
        let snapshot = entries.withLock { entries -> [String: Entry]? in
            let previous = entries[user]
            entries[user] = Entry(lines: lines, fetchedMillis: now, persistedMillis: previous?.persistedMillis)
            guard let previous, previous.lines == lines, let persisted = previous.persistedMillis, now - persisted < lifetime / 10 else {
                entries = entries.filter { $0.value.fetchedMillis >= now - lifetime }
                for key in entries.keys { entries[key]?.persistedMillis = now }
                return entries
            }
            return nil
        }
        if let snapshot { persist(snapshot) }
    }

    /// The lines for `user` if the tier gave them within the lifetime; nil otherwise.
    func lines(_ user: String) -> [String]? {
        let lifetime = Int64(lifetimeSeconds()) * 1_000
        guard lifetime > 0, let entry = entries.withLock({ $0[user] }), clock.nowMillis() - entry.fetchedMillis <= lifetime else { return nil }
        return entry.lines
    }

    /// Waits until every write asked for so far is done (tests, shutdown).
    func flush() { writer.sync {} }

    /// Written off the event loop; a failed write only loses the copy a restart would have had.
    private func persist(_ snapshot: [String: Entry]) {
        let (path, logger) = (self.path, self.logger)
        writer.async {
            do { try DurableFile.replace(path, with: try JSONEncoder().encode(snapshot)) } catch {
                logger.warning("cannot keep the SSH key cache", metadata: ["error": "\(error)"])
            }
        }
    }
}
