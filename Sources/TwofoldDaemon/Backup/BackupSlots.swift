import Synchronization

/// How many backups may be in progress at once: each holds a copy of the store in the state
/// directory until its connection ends, so a few admins (or one in a loop) cannot fill that disk.
final class BackupSlots: Sendable {
    static let limit = 2
    private let taken = Mutex(0)

    init() {}

    /// Takes a slot; false when every one is taken.
    func take() -> Bool {
        taken.withLock { count in
            guard count < Self.limit else { return false }
            count += 1
            return true
        }
    }

    func give() {
        taken.withLock { $0 = max(0, $0 - 1) }
    }
}
