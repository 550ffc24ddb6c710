import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// The verify path's `commit`: a step or counter is accepted once, also when two commits race on
/// one store or on two stores of one database; every queued commit completes. Runs against every
/// backend (how a backend batches commits is tested with the backend).
@Suite struct CommitTests {
    /// Runs two commits at once and returns both results.
    private func race(_ a: any TwofoldStore, _ b: any TwofoldStore, _ mutation: StoreMutation) async throws -> [MutationResult] {
        async let first = a.commit([mutation])
        async let second = b.commit([mutation])
        return try await first + second
    }

    @Test(arguments: Backend.all) func sameStepTwiceAtOnceIsAcceptedOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            for step in Int64(1)...200 {
                let results = try await race(store, store, accept("alice", step: step))
                #expect(results.filter { $0 == .applied }.count == 1, "step \(step): \(results)")
                #expect(results.filter { $0 == .conflict }.count == 1, "step \(step): \(results)")
            }
            #expect(try await store.user("alice")?.verify.lastStep == 200)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func sameStepTwiceFromTwoStoresOnOneDatabaseIsAcceptedOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let one = try await backend.makeStore(directory: dir, keys: keys)
            let two = try await backend.makeStore(directory: dir, keys: keys)
            try await enroll(one, "alice")
            for step in Int64(1)...200 {
                let results = try await race(one, two, accept("alice", step: step))
                #expect(results.filter { $0 == .applied }.count == 1, "step \(step): \(results)")
            }
            #expect(try await one.user("alice")?.verify.lastStep == 200)
            #expect(try await two.user("alice")?.verify.lastStep == 200)
            try await one.close()
            try await two.close()
        }
    }

    @Test(arguments: Backend.all) func commitsQueuedBeforeCloseComplete(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            let results = await withTaskGroup(of: Bool.self) { group in
                for step in Int64(1)...20 {
                    group.addTask { (try? await store.commit([accept("alice", step: step)])) != nil }
                }
                group.addTask { (try? await store.close()) != nil }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            // Every call returned (none hangs); each either ran or was refused as closed.
            #expect(results.count == 21)
            await #expect(throws: StoreError.self) { try await store.commit([accept("alice", step: 100)]) }
        }
    }

    @Test(arguments: Backend.all) func hotpCounterMovesPastEachMatch(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "hank", verify: VerifyState(counter: 5), parameters: OTPParameters(method: .hotp))
            #expect(try await store.commit([.accept(user: "hank", use: .counter(factor: FactorName.first, counter: 4, offset: 0), atMillis: 1)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "hank", use: .counter(factor: FactorName.first, counter: 7, offset: 0), atMillis: 2)]) == [.applied])
            #expect(try await store.user("hank")?.verify.counter == 8)
            #expect(try await store.commit([.accept(user: "hank", use: .counter(factor: FactorName.first, counter: 7, offset: 0), atMillis: 3)]) == [.conflict])
            #expect(try await store.commit([.accept(user: "hank", use: .counter(factor: FactorName.first, counter: 8, offset: 0), atMillis: 4),
                                            .accept(user: "hank", use: .counter(factor: FactorName.first, counter: 8, offset: 0), atMillis: 4)]) == [.applied, .conflict])
            #expect(try await store.user("hank")?.lastSuccessMillis == 4)
            #expect(try await store.commit([.accept(user: "nobody", use: .counter(factor: FactorName.first, counter: 0, offset: 0), atMillis: 4)]) == [.conflict])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func acceptRequiresAnActiveEnrollmentAndALaterStep(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await store.beginEnrollment(user: "pat", factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 1)
            #expect(try await store.commit([accept("pat", step: 10)]) == [.conflict])
            #expect(try await store.commit([accept("ghost", step: 10)]) == [.conflict])
            #expect(try await store.user("ghost") == nil)

            try await enroll(store, "alice", verify: VerifyState(lastStep: 50))
            let drifted = StoreMutation.accept(user: "alice", use: .timeStep(factor: FactorName.first, step: 52, offset: 2,
                                                                             verify: VerifyState(lastStep: 52, drift: 1, lastOffset: 2)), atMillis: 77)
            #expect(try await store.commit([accept("alice", step: 50), accept("alice", step: 49), drifted, accept("alice", step: 52)])
                    == [.conflict, .conflict, .applied, .conflict])
            let alice = try #require(try await store.user("alice"))
            #expect(alice.verify == VerifyState(lastStep: 52, drift: 1, lastOffset: 2))
            #expect(alice.lastSuccessMillis == 77)
            #expect(try await store.commit([]) == [])
            try await store.close()
        }
    }
}
