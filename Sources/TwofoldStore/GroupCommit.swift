import Synchronization

/// Group commit: callers enqueue mutations; one writer task at a time takes everything pending and
/// applies it with `apply` in a single transaction (one sync to disk), then resumes each caller with
/// its own slice of the results, or with the transaction's error. Calls that arrive while a batch is
/// being written wait for the next one. Every enqueued caller is resumed exactly once.
final class GroupCommitter: Sendable {
    /// Applies all the mutations in one durable transaction; returns one result per mutation, in order.
    typealias Apply = @Sendable ([StoreMutation]) async throws -> [MutationResult]

    private struct Request {
        let mutations: [StoreMutation]
        let continuation: CheckedContinuation<[MutationResult], any Error>
    }

    private struct State {
        var pending: [Request] = []
        var writer: Task<Void, Never>?
        var closed = false
        var batchesCommitted = 0
    }

    private let state = Mutex(State())
    private let apply: Apply

    init(apply: @escaping Apply) {
        self.apply = apply
    }

    /// Number of batches (transactions) committed so far.
    var batchesCommitted: Int { state.withLock { $0.batchesCommitted } }

    /// Queues `mutations` for the next batch and returns their results once that batch is durable.
    func submit(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        if mutations.isEmpty {
            if state.withLock({ $0.closed }) { throw StoreError.database("the store is closed") }
            return []
        }
        return try await withCheckedThrowingContinuation { continuation in
            let accepted = state.withLock { s -> Bool in
                if s.closed { return false }
                s.pending.append(Request(mutations: mutations, continuation: continuation))
                if s.writer == nil {
                    // Assigned under the lock, so the task cannot observe a stale nil and exit early.
                    s.writer = Task { await self.drain() }
                }
                return true
            }
            if !accepted { continuation.resume(throwing: StoreError.database("the store is closed")) }
        }
    }

    /// Stops accepting calls and waits until everything already queued has been written.
    func close() async {
        let writer = state.withLock { s -> Task<Void, Never>? in
            s.closed = true
            return s.writer
        }
        await writer?.value
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Request] in
                let taken = s.pending
                s.pending = []
                if taken.isEmpty { s.writer = nil }
                return taken
            }
            if batch.isEmpty { return }
            var all: [StoreMutation] = []
            all.reserveCapacity(batch.reduce(0) { $0 + $1.mutations.count })
            for request in batch { all += request.mutations }
            do {
                let results = try await apply(all)
                guard results.count == all.count else {
                    throw StoreError.database("internal error: \(results.count) results for \(all.count) mutations")
                }
                state.withLock { $0.batchesCommitted += 1 }
                var offset = 0
                for request in batch {
                    let end = offset + request.mutations.count
                    request.continuation.resume(returning: Array(results[offset..<end]))
                    offset = end
                }
            } catch {
                for request in batch { request.continuation.resume(throwing: error) }
            }
        }
    }
}
