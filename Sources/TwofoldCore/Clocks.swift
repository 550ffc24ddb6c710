import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The real wall clock (CLOCK_REALTIME).
public struct SystemClock: WallClock {
    public init() {}

    /// Milliseconds since the Unix epoch.
    public func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A clock that only moves when told to, for tests.
public final class ManualClock: WallClock, Sendable {
    private let millis: Mutex<Int64>

    /// Starts at `millis` since the Unix epoch.
    public init(millis: Int64) {
        self.millis = Mutex(millis)
    }

    /// The current manual time.
    public func nowMillis() -> Int64 {
        millis.withLock { $0 }
    }

    /// Sets the time.
    public func set(millis newValue: Int64) {
        millis.withLock { $0 = newValue }
    }

    /// Moves the time by `delta` milliseconds (may be negative).
    public func advance(millis delta: Int64) {
        millis.withLock { $0 += delta }
    }
}
