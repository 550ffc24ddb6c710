import Foundation

/// Runs blocking work (thousands of logins, a child process that runs for seconds) on a thread of
/// its own and awaits it. Tests run in parallel on Swift's cooperative pool, which has a thread per
/// core: a test that blocks one for long holds up every other test, and a code one of them computed
/// can expire before its login gets a thread.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
