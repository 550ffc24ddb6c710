import Foundation
import Synchronization
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

@Suite struct GroupCommitTests {
    @Test func concurrentCommitsShareTransactions() async throws {
        try await withTempDir { dir in
            let observed = Mutex<[Int]>([])
            let store = try SQLiteStore(path: dir + "/twofold.db", keyring: Keyring(sealing: try makeKeys(in: dir)),
                                        observer: StoreObserver(batchCommitted: { commits in observed.withLock { $0.append(commits) } }))
            let users = (0..<64).map { "user\($0)" }
            for user in users { try await enroll(store, user) }
            let before = store.batchesCommitted
            observed.withLock { $0 = [] }
            let results = try await withThrowingTaskGroup(of: (String, [MutationResult]).self) { group in
                for user in users {
                    group.addTask { (user, try await store.commit([accept(user, step: 7), .audit(AuditRecord(timeMillis: 3, action: "verify", user: user, outcome: "success"))])) }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            let batches = store.batchesCommitted - before
            #expect(results.count == 64)
            #expect(results.values.allSatisfy { $0 == [.applied, .applied] })
            #expect(batches >= 1)
            #expect(batches < 64, "64 concurrent commits took \(batches) transactions")
            // The observer heard of each batch: how many of the 64 commits shared it.
            #expect(observed.withLock { $0.count == batches && $0.reduce(0, +) == 64 })
            // Each caller got its own results: every user's step and audit record is there.
            for user in users { #expect(try await store.user(user)?.verify.lastStep == 7) }
            #expect(try await store.audit(AuditQuery(limit: 1000)).count == 64)
            try await store.close()
        }
    }

}

@Suite struct LoginReaderTests {
    @Test func seesEveryCommittedChangeAndOpensTheSecret() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            let secret = try await enroll(store, "alice")
            guard let reader = try store.makeLoginReader() else {
                Issue.record("the SQLite store has a login reader")
                return
            }
            let first = try reader.loginRecord("alice")
            #expect(first?.status == .active)
            #expect(first?.secret?.copyBytes() == secret.copyBytes())
            #expect(first?.verify.lastStep == nil)
            #expect(try reader.loginRecord("nobody") == nil)
            // A commit through the completion API, then the reader sees it at once.
            let results: [MutationResult] = try await withCheckedThrowingContinuation { continuation in
                store.commit([accept("alice", step: 42)]) { continuation.resume(with: $0) }
            }
            #expect(results == [.applied])
            #expect(try reader.loginRecord("alice")?.verify.lastStep == 42)
            // The same record as the async read, but for the recovery-code count, which a login does not need.
            let full = try await store.user("alice")
            #expect(full?.verify == (try reader.loginRecord("alice"))?.verify)
            try await store.close()
            #expect(throws: StoreError.database("the store is closed")) { try reader.loginRecord("alice") }
        }
    }

    @Test func aTamperedRowIsACorruptRecordNotACrash() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await enroll(store, "bob")
            let reader = try #require(try store.makeLoginReader())
            // bob's sealed secret copied onto alice: the AAD names bob, so it must not open for alice.
            try store.testingExecute("UPDATE factors SET secret = (SELECT secret FROM factors WHERE user = 'bob') WHERE user = 'alice'")
            #expect(throws: StoreError.self) { try reader.loginRecord("alice") }
            try store.testingExecute("UPDATE factors SET algorithm = 'MD4' WHERE user = 'bob'")
            let error = #expect(throws: StoreError.self) { try reader.loginRecord("bob") }
            guard case .corruptRecord(let user, _)? = error else {
                Issue.record("expected corruptRecord, got \(String(describing: error))")
                return
            }
            #expect(user == "bob")
            try await store.close()
        }
    }
}

@Suite struct CheckpointTests {
    @Test func theWALIsCopiedBackWithoutACommitDoingIt() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            // The commit's own checkpoint is only a safety net at 10,000 pages.
            #expect(try store.writerAutocheckpointPages() == 10_000)
            func mainFileSize() -> Int {
                (try? FileManager.default.attributesOfItem(atPath: dir + "/twofold.db")[.size] as? Int) ?? 0
            }
            let before = mainFileSize()
            // About 2 MiB of audit rows in one commit: far below the inline threshold, so only the
            // background checkpointer copies them into the main file.
            let reason = String(repeating: "r", count: 4_000)
            let rows = (0..<500).map { StoreMutation.audit(AuditRecord(timeMillis: Int64($0), action: "verify", user: "u", outcome: "success", reason: reason)) }
            _ = try await store.commit(rows)
            // Two whole passes of the checkpointer: the second began after the commit was durable.
            #expect(store.testingWaitForCheckpoints(2))
            let grown = mainFileSize() >= before + 2_000_000
            #expect(grown, "main file \(before) → \(mainFileSize()) bytes")
            try await store.close()
        }
    }
}
