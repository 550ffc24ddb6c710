import Synchronization

/// Group commit for a backend whose transactions are async (a network database): `GroupCommitter`'s
/// contract with an async `apply`. Callers enqueue mutations; one drain task takes everything pending
/// and applies it with `apply` in a single transaction, then hands each caller its own slice of the
/// results, or the transaction's error. Calls that arrive while a batch is in flight go into the next
/// one, up to `maximumMutations` a batch: a network database's transaction grows with its batch, and
/// other writers wait for the rows it holds. Every enqueued caller is completed exactly once, after
/// its batch has committed (or failed).
package final class AsyncGroupCommitter: Sendable {
    /// Applies all the mutations in one durable transaction; returns one result per mutation, in order.
    package typealias Apply = @Sendable ([StoreMutation]) async throws(StoreError) -> [MutationResult]
    /// Receives a caller's results (or the batch's error), on the drain task.
    package typealias Completion = @Sendable (Result<[MutationResult], StoreError>) -> Void

    private struct Request {
        let mutations: [StoreMutation]
        let completion: Completion
    }

    private struct State {
        var pending: [Request] = []
        var closed = false
        /// A drain task exists; it clears this itself, under the lock, when it finds nothing pending.
        var draining = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var committed = 0
    }

    private let state = Mutex(State())
    private let apply: Apply
    private let maximumMutations: Int
    private let observer: (@Sendable (_ commits: Int) -> Void)?

    /// A caller's mutations are never split: a batch holds at least one caller, more only while
    /// they fit in `maximumMutations`. `observer` hears of each committed batch: how many callers
    /// shared its transaction.
    package init(maximumMutations: Int = .max, observer: (@Sendable (_ commits: Int) -> Void)? = nil, apply: @escaping Apply) {
        self.maximumMutations = maximumMutations
        self.observer = observer
        self.apply = apply
    }

    /// Number of batches (transactions) committed so far.
    package var batchesCommitted: Int { state.withLock { $0.committed } }

    /// Queues `mutations` for the next batch; `completion` runs once that batch has committed or failed.
    package func submit(_ mutations: [StoreMutation], completion: @escaping Completion) {
        enum Next { case refuse, empty, queued, startDrain }
        let next = state.withLock { state -> Next in
            if state.closed { return .refuse }
            if mutations.isEmpty { return .empty }
            state.pending.append(Request(mutations: mutations, completion: completion))
            if state.draining { return .queued }
            state.draining = true
            return .startDrain
        }
        switch next {
        case .refuse: completion(.failure(.database("the store is closed")))
        case .empty: completion(.success([]))
        case .queued: break
        case .startDrain: Task { await drain() }
        }
    }

    /// Queues `mutations` and returns their results once their batch has committed.
    package func submit(_ mutations: [StoreMutation]) async throws -> [MutationResult] {
        try await withCheckedThrowingContinuation { continuation in
            submit(mutations) { continuation.resume(with: $0) }
        }
    }

    /// Stops accepting calls and waits until everything already queued has been applied.
    package func close() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                state.closed = true
                guard state.draining else { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func drain() async {
        while true {
            let (batch, waiters) = state.withLock { state -> ([Request], [CheckedContinuation<Void, Never>]) in
                var count = 0
                let taken = state.pending.prefix { request in
                    defer { count += request.mutations.count }
                    return count == 0 || count + request.mutations.count <= maximumMutations
                }
                let batch = Array(taken)
                state.pending.removeFirst(batch.count)
                guard batch.isEmpty else { return (batch, []) }
                state.draining = false
                let waiters = state.closed ? state.closeWaiters : []
                if state.closed { state.closeWaiters = [] }
                return ([], waiters)
            }
            if batch.isEmpty {
                for waiter in waiters { waiter.resume() }
                return
            }
            await write(batch)
        }
    }

    private func write(_ batch: [Request]) async {
        var all: [StoreMutation] = []
        all.reserveCapacity(batch.reduce(0) { $0 + $1.mutations.count })
        for request in batch { all += request.mutations }
        let results: [MutationResult]
        do throws(StoreError) {
            results = try await apply(all)
            guard results.count == all.count else {
                throw StoreError.database("internal error: \(results.count) results for \(all.count) mutations")
            }
        } catch {
            for request in batch { request.completion(.failure(error)) }
            return
        }
        state.withLock { $0.committed += 1 }
        observer?(batch.count)
        var offset = 0
        for request in batch {
            let end = offset + request.mutations.count
            request.completion(.success(Array(results[offset..<end])))
            offset = end
        }
    }
}
