import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Group commit on a dedicated writer thread: callers enqueue mutations; the thread takes
/// everything pending and applies it with `apply` in a single transaction (one sync to disk), then
/// hands each caller its own slice of the results, or the transaction's error. Calls that arrive
/// while a batch is being written go into the next one. Every enqueued caller is completed exactly
/// once, on the writer thread, after its batch is durable.
///
/// A plain thread (not a task) so that a batch costs no executor hops: the submitting event loop
/// wakes the thread once, and the thread wakes each waiting loop once when the batch is on disk.
package final class GroupCommitter: @unchecked Sendable {
    /// Applies all the mutations in one durable transaction; returns one result per mutation, in order.
    package typealias Apply = @Sendable ([StoreMutation]) throws(StoreError) -> [MutationResult]
    /// Receives a caller's results (or the batch's error) on the writer thread.
    package typealias Completion = @Sendable (Result<[MutationResult], StoreError>) -> Void

    private struct Request {
        let mutations: [StoreMutation]
        let completion: Completion
    }

    // Guarded by `condition`.
    private var pending: [Request] = []
    private var closed = false
    private var started = false
    private var finished = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var committed = 0

    private let condition = NSCondition()
    private let apply: Apply
    private let observer: (@Sendable (_ commits: Int) -> Void)?

    /// `observer` hears of each committed batch: how many callers shared its transaction.
    package init(observer: (@Sendable (_ commits: Int) -> Void)? = nil, apply: @escaping Apply) {
        self.observer = observer
        self.apply = apply
    }

    /// Number of batches (transactions) committed so far.
    package var batchesCommitted: Int {
        condition.lock()
        defer { condition.unlock() }
        return committed
    }

    /// Queues `mutations` for the next batch; `completion` runs on the writer thread once that batch is durable.
    package func submit(_ mutations: [StoreMutation], completion: @escaping Completion) {
        condition.lock()
        if closed {
            condition.unlock()
            completion(.failure(.database("the store is closed")))
            return
        }
        if mutations.isEmpty {
            condition.unlock()
            completion(.success([]))
            return
        }
        pending.append(Request(mutations: mutations, completion: completion))
        if !started {
            started = true
            let thread = Thread { [self] in drain() }
            thread.name = "twofold-commit"
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    /// Queues `mutations` and returns their results once their batch is durable.
    package func submit(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        try await withCheckedThrowingContinuation { continuation in
            submit(mutations) { continuation.resume(with: $0) }
        }
    }

    /// Stops accepting calls and waits until everything already queued has been written.
    package func close() async {
        await withCheckedContinuation { continuation in
            condition.lock()
            closed = true
            if !started || finished {
                condition.unlock()
                continuation.resume()
                return
            }
            closeWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    private func drain() {
        nameThisThread("twofold-commit")
        while true {
            condition.lock()
            while pending.isEmpty && !closed { condition.wait() }
            let batch = pending
            pending = []
            if batch.isEmpty {
                // Closed and nothing left: wake whoever waits in close().
                finished = true
                let waiters = closeWaiters
                closeWaiters = []
                condition.unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
            condition.unlock()
            write(batch)
        }
    }

    private func write(_ batch: [Request]) {
        var all: [StoreMutation] = []
        all.reserveCapacity(batch.reduce(0) { $0 + $1.mutations.count })
        for request in batch { all += request.mutations }
        let results: [MutationResult]
        do throws(StoreError) {
            results = try apply(all)
            guard results.count == all.count else {
                throw StoreError.database("internal error: \(results.count) results for \(all.count) mutations")
            }
        } catch {
            for request in batch { request.completion(.failure(error)) }
            return
        }
        condition.lock()
        committed += 1
        condition.unlock()
        observer?(batch.count)
        var offset = 0
        for request in batch {
            let end = offset + request.mutations.count
            request.completion(.success(Array(results[offset..<end])))
            offset = end
        }
    }
}

/// Names the calling thread in the OS (`/proc/TID/comm`: top -H, perf, gdb; at most 15 bytes).
/// Foundation's `Thread.name` stays inside Foundation on Linux: without this the thread keeps the
/// name of the thread that started it (an event loop's). Best effort.
package func nameThisThread(_ name: String) {
    #if canImport(Glibc)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    #endif
}
