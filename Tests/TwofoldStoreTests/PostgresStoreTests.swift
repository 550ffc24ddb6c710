import Foundation
import Synchronization
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// The PostgreSQL store against real PostgreSQL (scripts/pg-cluster.sh): daemons opening one empty
/// database at once, two stores racing the same codes, throttling across stores, failover
/// detection, an outage. The semantics every backend shares are in TwofoldStoreConformanceTests.
@Suite(.serialized) struct PostgresStoreTests {
    /// A store on `database` of `cluster`. The bounds are wide unless a test is about them: the
    /// tests run next to daemons and tests that hold a thread of the cooperative pool for seconds,
    /// and ten stores opening at once wait for each other's opening transaction.
    static func open(_ cluster: PostgresCluster, _ database: String, keys: SealingKeys,
                     connect: Duration = .seconds(10), statement: Duration = .seconds(10)) async throws -> PostgresStore {
        var configuration = try PostgresStoreConfiguration(url: cluster.url(database: database), password: try cluster.password)
        configuration.connectTimeout = connect
        configuration.statementTimeout = statement
        return try await PostgresStore(configuration: configuration, keys: keys)
    }

    /// Runs after the parallel pass, on a quiet database (scripts/run-tests.sh says why).
    @Test func tenDaemonsOpeningAnEmptyDatabaseTogetherMakeOneSchema() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
                // Each waits for the openings before its own, with the daemon's default statement bound:
                // the opening has its own (PostgresConnector.setupStatementTimeout).
                for _ in 0..<10 { group.addTask { try await Self.open(cluster, database, keys: keys, statement: .seconds(3)) } }
                return try await group.reduce(into: [PostgresStore]()) { $0.append($1) }
            }
            #expect(stores.count == 10)
            let url = cluster.url(database: database)
            #expect(try cluster.psql("SELECT count(*), min(version) FROM twofold_schema", url: url) == "1|v9")
            #expect(try cluster.psql("SELECT string_agg(key, ',' ORDER BY key) FROM twofold_meta", url: url) == "key_check,recovery_pepper")
            #expect(try cluster.psql("SELECT count(*) FROM twofold_timeline", url: url) == "1")
            // Every one of them works on the one schema.
            try await enroll(stores[0], "alice")
            for store in stores { #expect(try await store.user("alice")?.status == .active) }
            for store in stores { try await store.close() }
        }
    }

    /// A daemon starting while another holds the opening lock (creating or migrating the schema on a
    /// loaded server) waits longer than a login's statement may, and starts: CI once saw a relay's
    /// server give up after the 3 s bound with "canceling statement due to statement timeout".
    @Test func anOpeningThatWaitsLongerThanALoginStatementStillOpens() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let holder = try await Self.open(cluster, database, keys: keys)
            let finished = Mutex(false)
            let opening = Task {
                defer { finished.withLock { $0 = true } }
                return try await Self.open(cluster, database, keys: keys, statement: .milliseconds(200))
            }
            // Hold the lock until the opening has waited five times its statement bound (or gave up).
            let waited = try await holder.read(statements: 2) { connection -> Bool in
                _ = try await connection.run("SELECT pg_advisory_lock(\(PostgresSchema.openLockKey))")
                var waited = false
                while !waited, !finished.withLock({ $0 }) {
                    waited = try await connection.run("""
                        SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                            AND query LIKE '%pg_advisory_xact_lock%' AND clock_timestamp() - query_start > interval '1 second'
                        """).first?.decode(Bool.self) ?? false
                    if !waited { try await Task.sleep(for: .milliseconds(20)) }
                }
                _ = try await connection.run("SELECT pg_advisory_unlock(\(PostgresSchema.openLockKey))")
                return waited
            }
            let second = try await opening.value
            #expect(waited)
            try await enroll(holder, "alice")
            #expect(try await second.user("alice")?.status == .active)
            try await holder.close()
            try await second.close()
        }
    }

    @Test func twoStoresRacingTheSameCodesAcceptEachOnce() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let one = try await Self.open(cluster, database, keys: keys)
            let two = try await Self.open(cluster, database, keys: keys)
            let users = (0..<1_000).map { "user\($0)" }
            try await one.importEnrollments(try users.map {
                EnrollmentImportRecord(user: $0, factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(),
                                       verify: VerifyState(), recoveryCodes: [], atMillis: 1_000)
            })
            let start = ContinuousClock.now
            let results = try await withThrowingTaskGroup(of: (String, MutationResult).self) { group in
                for user in users {
                    for store in [one, two] {
                        group.addTask { (user, try await store.commit([accept(user, step: 7)])[0]) }
                    }
                }
                return try await group.reduce(into: [String: [MutationResult]]()) { $0[$1.0, default: []].append($1.1) }
            }
            let elapsed = ContinuousClock.now - start
            #expect(results.count == 1_000)
            for user in users {
                let outcome = results[user] ?? []
                #expect(outcome.filter { $0 == .applied }.count == 1 && outcome.filter { $0 == .conflict }.count == 1, "\(user): \(outcome)")
            }
            let batches = one.batchesCommitted + two.batchesCommitted
            print("2,000 racing commits on two stores: \(batches) batches in \(elapsed)")
            try await one.close()
            try await two.close()
        }
    }

    @Test func failuresThroughTwoStoresLockAtTheConfiguredCount() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let one = try await Self.open(cluster, database, keys: keys)
            let two = try await Self.open(cluster, database, keys: keys)
            try await enroll(one, "alice")
            let policy = ThrottlePolicy(maxFailures: 5, baseDelayMillis: 0, maxDelayMillis: 0, lockDurationMillis: 60_000)
            let states = try await withThrowingTaskGroup(of: MutationResult.self) { group in
                for i in 0..<8 {
                    let store = i % 2 == 0 ? one : two
                    group.addTask { try await store.commit([.recordFailure(user: "alice", atMillis: 1_000 + Int64(i), policy: policy)])[0] }
                }
                return try await group.reduce(into: [Int]()) { counts, result in
                    if case .appliedFailure(let state) = result { counts.append(state.failures) }
                }
            }
            // Each failure saw the one before it, whichever store counted it; the lock is not extended.
            #expect(states.sorted() == [1, 2, 3, 4, 5, 5, 5, 5])
            let throttle = try #require(try await two.user("alice")?.throttle)
            #expect(throttle.failures == 5 && throttle.lockedUntilMillis != nil)
            #expect(try await one.commit([accept("alice", step: 3, at: 2_000, policy: policy)]) == [.throttled(throttle)])
            try await one.close()
            try await two.close()
        }
    }

    /// Figures, printed: one login's batch after another (a batch's latency), then 64 at a time
    /// (group commit); directly and through PgBouncer.
    @Test func commitRates() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            for pooled in [false, true] {
                let url = pooled ? cluster.bouncerURL(database: database) : cluster.url(database: database)
                let store = try await PostgresStore(configuration: try PostgresStoreConfiguration(url: url, password: try cluster.password), keys: keys)
                let users = (0..<64).map { "rate\(pooled)\($0)" }
                for user in users { try await enroll(store, user) }
                let login: @Sendable (String, Int64) -> [StoreMutation] = { user, step in
                    [accept(user, step: step), .auditAttempt(AuditRecord(timeMillis: 2_000, action: "verify", user: user, outcome: "success"))]
                }
                var start = ContinuousClock.now
                for step in Int64(1)...300 { #expect(try await store.commit(login(users[0], step)) == [.applied, .applied]) }
                let sequential = ContinuousClock.now - start
                start = ContinuousClock.now
                let before = store.batchesCommitted
                for step in Int64(1)...20 {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for user in users.dropFirst() {
                            group.addTask {
                                let results = try await store.commit(login(user, step))
                                #expect(results == [.applied, .applied])
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                let concurrent = ContinuousClock.now - start
                let batches = store.batchesCommitted - before
                print("""
                    PostgreSQL\(pooled ? " through PgBouncer" : ""): 300 sequential logins in \(sequential) \
                    (\(Int(300 / sequential.seconds)) batches/s); 20 × 63 concurrent logins in \(concurrent) \
                    (\(Int(1_260 / concurrent.seconds)) logins/s, \(batches) batches)
                    """)
                try await store.close()
            }
        }
    }

    /// The SQL path of failover detection: a stored timeline older than the server's, as a promoted
    /// standby presents it.
    @Test func aNewTimelineRaisesEveryWatermarkOnceAndIsAudited() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        let url = cluster.url(database: database)
        try await withTempDir { dir in
            let store = try await Self.open(cluster, database, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await enroll(store, "bob", verify: VerifyState(lastStep: 5))
            try await enroll(store, "carl", verify: VerifyState(counter: 3), parameters: OTPParameters(method: .hotp))
            let now = Int64(Date().timeIntervalSince1970 * 1_000)
            let step = now / 1_000 / 30
            #expect(try await store.commit([accept("alice", step: step, at: now)]) == [.applied])

            let server = try cluster.psql("SELECT timeline FROM twofold_timeline", url: url)
            try cluster.psql("UPDATE twofold_timeline SET timeline = 0", url: url)
            // The code of the next step may have been accepted on the lost primary: refused now.
            #expect(try await store.commit([accept("alice", step: step + 1, at: now)]) == [.conflict])
            #expect(try await store.user("alice")?.verify.lastStep == step + 1)
            #expect(try await store.user("bob")?.verify.lastStep == step + 1)
            #expect(try await store.user("carl")?.verify.counter == 14)
            #expect(try cluster.psql("SELECT timeline FROM twofold_timeline", url: url) == server)
            let audit = try await store.audit(AuditQuery(outcome: "applied"))
            #expect(audit.map(\.action) == ["failover"])
            #expect(audit.first?.reason == "database failed over: timeline 0 -> \(server); raised 2 TOTP and 1 HOTP factors")

            // Once: the next batch raises nothing, and a later step is accepted.
            #expect(try await store.commit([accept("alice", step: step + 2, at: now)]) == [.applied])
            #expect(try await store.user("bob")?.verify.lastStep == step + 1)
            #expect(try await store.audit(AuditQuery(outcome: "applied")).count == 1)
            try await store.close()
        }
    }

    /// A statement sent on a connection the server has closed (here: its backend terminated, as an
    /// idle transaction timing out terminates it) fails at once; postgres-nio alone never answers
    /// one written to a closed channel, and the caller waited for good.
    @Test func aStatementOnAConnectionTheServerClosedFailsInsteadOfHanging() async throws {
        let cluster = try PostgresCluster()
        let database = try cluster.createScratchDatabase()
        try await withTempDir { dir in
            let store = try await Self.open(cluster, database, keys: try makeKeys(in: dir))
            let start = ContinuousClock.now
            let error = await #expect(throws: StoreError.self) {
                try await store.read(statements: 2) { connection in
                    _ = try? await connection.run("SELECT pg_terminate_backend(pg_backend_pid())")
                    try await Task.sleep(for: .milliseconds(300))
                    return try await connection.run("SELECT 1").first?.decode(Int.self)
                }
            }
            #expect(ContinuousClock.now - start < .seconds(3), "\(String(describing: error))")
            // The pool drops the dead connection: the store goes on.
            try await enroll(store, "alice")
            #expect(try await store.user("alice")?.status == .active)
            try await store.close()
        }
    }

    /// PostgreSQL stopped the way a crash stops it: commits fail within the timeouts, and the same
    /// store works again once it is back, without reopening.
    @Test func anOutageFailsCommitsInTimeAndTheStoreRecovers() async throws {
        let cluster = try PostgresCluster.startPrivate()
        try await withTempDir { dir in
            let store = try await Self.open(cluster, "twofold", keys: try makeKeys(in: dir), connect: .seconds(1), statement: .seconds(1))
            try await enroll(store, "alice")
            #expect(try await store.commit([accept("alice", step: 1)]) == [.applied])

            try cluster.stopImmediate()
            for step in Int64(2)...4 {
                let start = ContinuousClock.now
                await #expect(throws: StoreError.self) { try await store.commit([accept("alice", step: step)]) }
                let elapsed = ContinuousClock.now - start
                #expect(elapsed < .seconds(3), "a commit during the outage took \(elapsed)")
            }
            await #expect(throws: StoreError.self) { try await store.user("alice") }

            try cluster.start()
            let back = ContinuousClock.now
            var result: [MutationResult]?
            while result == nil, ContinuousClock.now < back + .seconds(30) {
                result = try? await store.commit([accept("alice", step: 5)])
                if result == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(result == [.applied])
            // The pool renewed during the outage retries quickly: not postgres-nio's growing backoff.
            let recovered = ContinuousClock.now - back
            #expect(recovered < .seconds(5), "the store took \(recovered) to work again")
            print("commits work again \(recovered) after PostgreSQL is back")
            #expect(try await store.user("alice")?.verify.lastStep == 5)
            try await store.close()
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
