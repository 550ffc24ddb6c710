import Foundation
import GRDB
import TwofoldStore

/// Copies the WAL back into the database file from a thread and a connection of its own, so that no
/// commit waits for it. SQLite's automatic checkpoint runs inside the commit that crosses its
/// threshold: that batch of logins would wait for the copy and the database file's `fsync`. This
/// one runs every `interval` as a PASSIVE checkpoint, which never blocks the writer or the readers;
/// the writer's own automatic checkpoint stays on, at a higher threshold, as a safety net.
final class BackgroundCheckpointer: @unchecked Sendable {
    private let queue: DatabaseQueue
    private let interval: TimeInterval
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var stopped = false
    private var finished = false
    private var passes = 0

    /// Opens the checkpoint connection on the database at `path` and starts the thread.
    init(path: String, interval: TimeInterval = 0.25) throws {
        var config = Configuration()
        config.label = "twofold.store.checkpointer"
        config.busyMode = .timeout(1)
        queue = try DatabaseQueue(path: path, configuration: config)
        self.interval = interval
        let thread = Thread { [self] in run() }
        thread.name = "twofold-checkpoint"
        thread.start()
    }

    /// Stops the thread (waiting for a checkpoint in progress) and closes the connection.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        while !finished { condition.wait() }
        condition.unlock()
        try? queue.close()
    }

    /// Blocks until `count` more checkpoint passes have run (for tests; false if stopped first).
    func waitForPasses(_ count: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let target = passes + count
        while passes < target && !finished { condition.wait() }
        return passes >= target
    }

    private func run() {
        nameThisThread("twofold-ckpt")
        condition.lock()
        while !stopped {
            _ = condition.wait(until: Date(timeIntervalSinceNow: interval))
            if stopped { break }
            condition.unlock()
            // Best effort: a busy or failed checkpoint is tried again next time, and the writer's
            // automatic checkpoint bounds the WAL meanwhile.
            _ = try? queue.inDatabase { db in try db.checkpoint(.passive) }
            condition.lock()
            passes += 1
            condition.broadcast()
        }
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
