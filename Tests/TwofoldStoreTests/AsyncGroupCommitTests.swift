import Synchronization
import Testing
import TwofoldCore
@testable import TwofoldStore

/// AsyncGroupCommitter alone, with an apply that records its batches: every caller completed once
/// with its own results, callers arriving during a batch share the next one, none split, none over
/// the cap; a failed batch fails exactly its callers; the observer hears of each committed batch.
@Suite struct AsyncGroupCommitTests {
    private static func audit(_ n: Int) -> StoreMutation {
        .audit(AuditRecord(timeMillis: Int64(n), action: "verify", outcome: "success"))
    }

    @Test func callersShareBatchesUpToTheCapAndGetTheirOwnResults() async throws {
        let batches = Mutex<[[Int64]]>([])
        let observed = Mutex<[Int]>([])
        let committer = AsyncGroupCommitter(maximumMutations: 10, observer: { commits in observed.withLock { $0.append(commits) } }) { mutations throws(StoreError) in
            let times = mutations.map { mutation -> Int64 in
                if case .audit(let record) = mutation { return record.timeMillis }
                return -1
            }
            batches.withLock { $0.append(times) }
            try? await Task.sleep(for: .milliseconds(20))
            if times.contains(666) { throw StoreError.database("injected") }
            return times.map { $0 % 2 == 0 ? .applied : .conflict }
        }
        // 40 callers of 3 mutations each, one of them failing its batch.
        let outcomes = await withTaskGroup(of: (Int, Result<[MutationResult], StoreError>).self) { group in
            for caller in 0..<40 {
                let mutations = (0..<3).map { Self.audit(caller == 17 && $0 == 1 ? 666 : caller * 3 + $0) }
                group.addTask {
                    let result: Result<[MutationResult], StoreError>
                    do { result = .success(try await committer.submit(mutations)) } catch { result = .failure(error as! StoreError) }
                    return (caller, result)
                }
            }
            return await group.reduce(into: [Int: Result<[MutationResult], StoreError>]()) { $0[$1.0] = $1.1 }
        }
        let seen = batches.withLock { $0 }
        #expect(outcomes.count == 40)
        #expect(seen.allSatisfy { $0.count <= 10 && $0.count % 3 == 0 })
        #expect(seen.count < 40, "\(seen.count) batches for 40 callers")
        let failedBatch = try #require(seen.first { $0.contains(666) })
        for (caller, result) in outcomes {
            let first = Int64(caller * 3)
            switch result {
            case .success(let results):
                #expect(!failedBatch.contains(first))
                #expect(results == (0..<3).map { (first + Int64($0)) % 2 == 0 ? .applied : .conflict })
            case .failure:
                #expect(failedBatch.contains(first) || caller == 17)
            }
        }
        #expect(committer.batchesCommitted == seen.count - 1)
        #expect(observed.withLock { $0 } == seen.filter { !$0.contains(666) }.map { $0.count / 3 }, "callers of each committed batch, in order")
        await committer.close()
        await #expect(throws: StoreError.self) { try await committer.submit([Self.audit(1)]) }
    }
}
