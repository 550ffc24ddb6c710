import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
import TwofoldStore
import TwofoldTestSupport

/// Moving a host in (schema v6) through the store calls: a user moved whole, again as "already
/// moved" with only the host's later state brought over, a differently enrolled user left alone,
/// recovery codes that keep their host's pepper (through a rekey too), and audit records copied
/// once. Runs against every backend.
@Suite struct MoveInTests {
    /// A host's user: a TOTP and an HOTP factor with replay state, a throttle lock, overrides, and
    /// recovery codes made with the host's pepper (the codes, in clear, returned for the test).
    static func hostUser(_ name: String, pepper: SecretBytes) throws -> (MovedUser, [String]) {
        let totp = FactorRecord(name: "app", secret: try SecretBytes(randomCount: 20), verify: VerifyState(lastStep: 100, drift: 1, lastOffset: 1),
                                addedAtMillis: 1_000)
        let hotp = FactorRecord(name: "token", parameters: OTPParameters(method: .hotp), secret: try SecretBytes(randomCount: 20),
                                verify: VerifyState(counter: 7), addedAtMillis: 1_100)
        let record = UserRecord(name: name, factors: [totp, hotp], throttle: ThrottleState(failures: 5, lockedUntilMillis: 9_000_000_000_000),
                                requirement: .required, lastSuccessMillis: 1_500, firstRequiredMillis: 500, factorKinds: [.totp, .recovery])
        let codes = try RecoveryCodes.generate(count: 3)
        let hashes = try codes.map { try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0)!, pepper: pepper) }
            .map { RecoveryCodeHash(salt: $0.salt, hash: $0.hash, pepper: pepper) }
        return (MovedUser(record: record, recoveryCodes: hashes, hostPepper: pepper, atMillis: 3_000), codes)
    }

    /// Whether `body` leaves the stored data as it was. SQLite's background checkpointer is let
    /// finish first: it folds the WAL into the file (what opening wrote, too) on its own time.
    static func leavesDataAlone(_ store: any TwofoldStore, _ backend: Backend, _ dir: String,
                                _ body: (any TwofoldStore) async throws -> Void) async throws -> (Bool, any TwofoldStore) {
        if let sqlite = store as? SQLiteStore { _ = try await offPool { sqlite.testingWaitForCheckpoints(2) } }
        let before = try await backend.fingerprint(dir)
        try await body(store)
        return (try await backend.fingerprint(dir) == before, store)
    }

    @Test(arguments: Backend.all) func aUserMovesWholeOnceThenOnlyTheHostsLaterStateFollows(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let hostPepper = try SecretBytes(randomCount: 32)
            var (moved, codes) = try Self.hostUser("alice", pepper: hostPepper)
            var (same, store) = try await Self.leavesDataAlone(try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir)), backend, dir) { open async throws in
                #expect(try await open.moveIn(moved, dryRun: true) == .moved)
            }
            #expect(same, "a dry run writes nothing")
            let tierPepper = try #require(try await store.recoveryPepper())
            #expect(try await store.moveIn(moved, dryRun: false) == .moved)

            let stored = try #require(try await store.user("alice"))
            #expect(stored.factors.map(\.name) == ["app", "token"])
            for (a, b) in zip(stored.factors, moved.record.factors) {
                #expect(a.secret!.constantTimeEquals(b.secret!) && a.parameters == b.parameters && a.verify == b.verify && a.addedAtMillis == b.addedAtMillis)
            }
            #expect(stored.throttle == moved.record.throttle && stored.requirement == .required && stored.factorKinds == [.totp, .recovery])
            #expect(stored.firstRequiredMillis == 500 && stored.lastSuccessMillis == 1_500 && stored.recoveryCodesLeft == 3)

            // A host's code works in the tier, with the tier's pepper given: the code carries the host's.
            let candidates = try await store.recoveryCodes(user: "alice")
            #expect(candidates.allSatisfy { $0.hash.pepper?.constantTimeEquals(hostPepper) == true })
            #expect(RecoveryCodes.match(codes[0], against: candidates, pepper: tierPepper) != nil)
            #expect(RecoveryCodes.match(codes[0], against: candidates.map { ($0.index, RecoveryCodeHash(salt: $0.hash.salt, hash: $0.hash.hash)) },
                                        pepper: tierPepper) == nil, "the tier's own pepper does not verify a host's code")

            // Again: nothing to do. Then the host moved on: a later step, and code 1 used there.
            (same, store) = try await Self.leavesDataAlone(store, backend, dir) { open async throws in
                #expect(try await open.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 0))
            }
            #expect(same, "a second move writes nothing")
            moved.record.factors[0].verify = VerifyState(lastStep: 105, drift: 2, lastOffset: 0)
            moved.recoveryCodes.remove(at: 1)
            #expect(try await store.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 2))
            let after = try #require(try await store.user("alice"))
            #expect(after.factors[0].verify.lastStep == 105 && after.factors[1].verify.counter == 7)
            let left = try await store.recoveryCodes(user: "alice")
            #expect(RecoveryCodes.match(codes[1], against: left, pepper: tierPepper) == nil, "used on the host since the first move")
            #expect(RecoveryCodes.match(codes[2], against: left, pepper: tierPepper) != nil)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func aUserEnrolledDifferentlyInTheTierIsNotTouched(_ backend: Backend) async throws {
        try await withTempDir { dir in
            var store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let (moved, _) = try Self.hostUser("bob", pepper: try SecretBytes(randomCount: 32))
            try await enroll(store, "bob", factor: "app")
            try await store.importEnrollment(EnrollmentImportRecord(user: "bob", factor: "token", secret: try SecretBytes(randomCount: 20),
                                                                    parameters: OTPParameters(method: .hotp), verify: VerifyState(),
                                                                    recoveryCodes: [], atMillis: 1_000))
            var same = false
            (same, store) = try await Self.leavesDataAlone(store, backend, dir) { open async throws in
                guard case .conflict(let reason) = try await open.moveIn(moved, dryRun: false) else { throw StoreError.database("no conflict") }
                #expect(reason.contains("another secret"), "\(reason)")
            }
            #expect(same, "a user in conflict is not touched")

            #expect(try await store.removeFactor(user: "bob", name: "token"))
            guard case .conflict(let other) = try await store.moveIn(moved, dryRun: true) else { throw StoreError.database("no conflict") }
            #expect(other.contains("other factors") && other.contains("token"), "\(other)")
            try await store.close()
        }
    }

    /// A host's key (public data, as the host stored it).
    static func hostKey(_ name: String, seed: UInt8, count: UInt32) -> Fido2Credential {
        Fido2Credential(name: name, id: Array(repeating: seed, count: 20), algorithm: .edDSA, publicKey: Array(repeating: seed, count: 32),
                        signCount: count, aaguid: Array(repeating: 1, count: 16), addedAtMillis: 1_200, lastUsedMillis: 1_400)
    }

    @Test(arguments: Backend.all) func keysMoveWithTheirUserAndTheirCountersFollow(_ backend: Backend) async throws {
        try await withTempDir { dir in
            var store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            var (moved, _) = try Self.hostUser("alice", pepper: try SecretBytes(randomCount: 32))
            moved.record.keys = [Self.hostKey("blue", seed: 1, count: 10)]
            // A user with only a key on the host is moved too.
            var (dave, _) = try Self.hostUser("dave", pepper: try SecretBytes(randomCount: 32))
            dave.record.factors = []
            dave.record.keys = [Self.hostKey("key", seed: 2, count: 0)]
            #expect(try await store.moveIn(moved, dryRun: false) == .moved)
            #expect(try await store.moveIn(dave, dryRun: false) == .moved)
            #expect(try await store.user("alice")?.keys == moved.record.keys)
            let stored = try #require(try await store.user("dave"))
            #expect(stored.keys == dave.record.keys && stored.hasFactor && stored.recoveryCodesLeft == 3)

            // Again: nothing. Then the key was used on the host: its later counter follows, so
            // an assertion used there is not accepted in the tier.
            var same = false
            (same, store) = try await Self.leavesDataAlone(store, backend, dir) { open async throws in
                #expect(try await open.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 0))
                #expect(try await open.moveIn(dave, dryRun: false) == .alreadyMoved(updated: 0))
            }
            #expect(same, "a second move writes nothing")
            moved.record.keys[0].signCount = 15
            #expect(try await store.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 1))
            #expect(try await store.user("alice")?.keys.first?.signCount == 15)
            let use = FactorUse.keyAssertion(name: "blue", credential: moved.record.keys[0].id, signCount: 15)
            #expect(try await store.commit([.consume(user: "alice", use: use)]) == [.conflict])
            // A tier counter later than the host's stays.
            moved.record.keys[0].signCount = 12
            #expect(try await store.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 0))
            #expect(try await store.user("alice")?.keys.first?.signCount == 15)

            // Another key in the tier, or the key another user's there: a conflict, nothing written.
            moved.record.keys[0].id = [9, 9, 9]
            guard case .conflict(let reason) = try await store.moveIn(moved, dryRun: true) else { throw StoreError.database("no conflict") }
            #expect(reason.contains("blue"), "\(reason)")
            var (erin, _) = try Self.hostUser("erin", pepper: try SecretBytes(randomCount: 32))
            erin.record.keys = [Self.hostKey("mine", seed: 2, count: 0)]
            #expect(try await store.moveIn(erin, dryRun: true) == MoveInPlan.keyTaken.outcome)
            #expect(try await store.moveIn(erin, dryRun: false) == MoveInPlan.keyTaken.outcome)
            #expect(try await store.user("erin") == nil)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func sshKeysMoveWithTheirUserAndTheTiersStay(_ backend: Backend) async throws {
        try await withTempDir { dir in
            var store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            var (moved, _) = try Self.hostUser("alice", pepper: try SecretBytes(randomCount: 32))
            let blue = SSHKeyStoreTests.key("blue", seed: 1), green = SSHKeyStoreTests.key("green", seed: 2)
            moved.sshKeys = [blue]
            // A user with only an SSH key on the host is moved too (its row, the key).
            let (host, _) = try Self.hostUser("dave", pepper: try SecretBytes(randomCount: 32))
            let dave = MovedUser(record: UserRecord(name: "dave"), recoveryCodes: [], hostPepper: host.hostPepper, atMillis: 3_000,
                                 sshKeys: [SSHKeyStoreTests.key("key", seed: 3)])
            #expect(try await store.moveIn(moved, dryRun: true) == .moved)
            #expect(try await store.sshKeys(user: "alice").isEmpty)
            #expect(try await store.moveIn(moved, dryRun: false) == .moved)
            #expect(try await store.moveIn(dave, dryRun: false) == .moved)
            #expect(try await store.sshKeys(user: "alice") == [blue])
            #expect(try await store.sshKeys(user: "dave") == dave.sshKeys)
            #expect(try await store.user("dave")?.hasFactor == false)

            // Again: nothing. One added in the tier since stays; one added on the host follows.
            var same = false
            (same, store) = try await Self.leavesDataAlone(store, backend, dir) { open async throws in
                #expect(try await open.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 0))
                #expect(try await open.moveIn(dave, dryRun: false) == .alreadyMoved(updated: 0))
            }
            #expect(same, "a second move writes nothing")
            try await store.addSSHKey(user: "alice", SSHKeyStoreTests.key("tier", seed: 4))
            moved.sshKeys.append(green)
            #expect(try await store.moveIn(moved, dryRun: false) == .alreadyMoved(updated: 1))
            #expect(try await store.sshKeys(user: "alice").map(\.name) == ["blue", "green", "tier"])

            // A name that is another key in the tier, or a key another user's there: a conflict, nothing written.
            moved.sshKeys.append(SSHKeyStoreTests.key("tier", seed: 5))
            guard case .conflict(let reason) = try await store.moveIn(moved, dryRun: true) else { throw StoreError.database("no conflict") }
            #expect(reason.contains("tier"), "\(reason)")
            var (erin, _) = try Self.hostUser("erin", pepper: try SecretBytes(randomCount: 32))
            erin.sshKeys = [SSHKeyStoreTests.key("mine", seed: 6), SSHKeyStoreTests.key("theirs", seed: 3)]
            #expect(try await store.moveIn(erin, dryRun: true) == MoveInPlan.sshKeyTaken.outcome)
            #expect(try await store.moveIn(erin, dryRun: false) == MoveInPlan.sshKeyTaken.outcome)
            #expect(try await store.user("erin") == nil)
            #expect(try await store.listSSHKeys(after: nil, limit: 100).count == 4)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func anSSHKeyRuleMovesWithItsUserAndTheTiersStays(_ backend: Backend) async throws {
        try await withTempDir { dir in
            var store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let any = SSHKeyRule(types: .any, verifyRequired: true), sk = SSHKeyRule(types: .sk, verifyRequired: true)
            // A user with factors, an SSH key and a rule; one with only a rule; one whose tier row
            // has another override only; one whose tier row has its own rule.
            var (alice, _) = try Self.hostUser("alice", pepper: try SecretBytes(randomCount: 32))
            alice.record.sshKeyRule = any
            alice.sshKeys = [SSHKeyStoreTests.key("blue", seed: 1)]
            let pepper = alice.hostPepper
            let frank = MovedUser(record: UserRecord(name: "frank", sshKeyRule: any), recoveryCodes: [], hostPepper: pepper, atMillis: 3_000)
            let gina = MovedUser(record: UserRecord(name: "gina", sshKeyRule: sk), recoveryCodes: [], hostPepper: pepper, atMillis: 3_000)
            let henry = MovedUser(record: UserRecord(name: "henry", sshKeyRule: any), recoveryCodes: [], hostPepper: pepper, atMillis: 3_000)
            try await store.setRequirement(user: "gina", .exempt)
            try await store.setSSHKeyRule(user: "henry", SSHKeyRule())
            for user in [alice, frank, gina] {
                #expect(try await store.moveIn(user, dryRun: false) == .moved, "\(user.record.name)")
            }
            // The tier's row is already what the move would write: the tier's rule wins.
            #expect(try await store.moveIn(henry, dryRun: false) == .alreadyMoved(updated: 0))
            #expect(try await store.user("alice")?.sshKeyRule == any)
            #expect(try await store.authorizedSSHKeys(user: "alice") == UserSSHKeys(rule: any, keys: alice.sshKeys))
            #expect(try await store.user("frank")?.sshKeyRule == any)
            let stored = try #require(try await store.user("gina"))
            #expect(stored.sshKeyRule == sk && stored.requirement == .exempt)
            #expect(try await store.user("henry")?.sshKeyRule == SSHKeyRule(), "the tier's own rule stays")

            // Again: nothing to do.
            var same = false
            (same, store) = try await Self.leavesDataAlone(store, backend, dir) { open async throws in
                for user in [alice, frank, gina, henry] {
                    #expect(try await open.moveIn(user, dryRun: false) == .alreadyMoved(updated: 0), "\(user.record.name)")
                }
            }
            #expect(same, "a second move writes nothing")
            try await store.close()
        }
    }

    @Test(arguments: Backend.rotating) func movedRecoveryCodesKeepTheirPepperThroughARekey(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new")
            let store = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: old))
            let hostPepper = try SecretBytes(randomCount: 32)
            let (moved, codes) = try Self.hostUser("carol", pepper: hostPepper)
            #expect(try await store.moveIn(moved, dryRun: false) == .moved)
            try await store.close()

            let rotated = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new, previous: [old]))
            #expect(try await rekeyAll(rotated).unreadable == 0)
            try await rotated.close()
            let only = try await backend.makeStore(directory: dir, keyring: Keyring(sealing: new))
            let candidates = try await only.recoveryCodes(user: "carol")
            #expect(RecoveryCodes.match(codes[2], against: candidates, pepper: try #require(try await only.recoveryPepper())) != nil)
            try await only.close()
        }
    }

    @Test(arguments: Backend.all) func aHostsAuditRecordsAreCopiedOnce(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            _ = try await store.commit([.audit(AuditRecord(timeMillis: 10, action: "verify", user: "own", outcome: "success"))])
            let records = (1...3).map { AuditRecord(timeMillis: Int64($0), action: "verify", user: "u\($0)", outcome: "success", host: "host-a") }
            #expect(try await store.movedAuditMark(host: "host-a") == nil)
            try await store.appendMovedAudit(Array(records[0..<2]), host: "host-a", through: 20, previous: nil)
            #expect(try await store.movedAuditMark(host: "host-a") == 20)
            // A second move that read the mark before the first wrote it: refused, nothing added.
            await #expect(throws: StoreError.self) { try await store.appendMovedAudit(records, host: "host-a", through: 30, previous: nil) }
            try await store.appendMovedAudit([records[2]], host: "host-a", through: 30, previous: 20)
            #expect(try await store.audit(AuditQuery(host: "host-a")).map(\.user) == ["u1", "u2", "u3"])
            #expect(try await store.movedAuditMark(host: "host-b") == nil)

            // Read oldest first, after an id.
            let all = try await store.auditRecords(after: 0, limit: 10)
            #expect(all.map(\.user) == ["own", "u1", "u2", "u3"])
            #expect(try await store.auditRecords(after: all[1].id!, limit: 1).map(\.user) == ["u2"])
            try await store.close()
        }
    }
}
