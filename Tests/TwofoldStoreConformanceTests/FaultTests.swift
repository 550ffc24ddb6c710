import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// What the store does when its data is damaged behind its back or a write fails halfway: each
/// backend does the damage with its own SQL (`Backend.fault`), the store must answer the same.
@Suite struct FaultTests {
    /// The user of a `.corruptRecord`, or nil for any other error.
    private func corruptUser(_ error: StoreError?) -> String? {
        if case .corruptRecord(let user, _)? = error { return user }
        return nil
    }

    @Test(arguments: Backend.all) func wrongKeyIsRefusedAndChangesNothing(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let right = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: right)
            let secret = try await enroll(store, "alice")
            try await store.close()
            let before = try await backend.fingerprint(dir)

            let wrong = try makeKeys(in: dir, name: "other-key")
            await #expect(throws: StoreError.wrongKey) { try await backend.makeStore(directory: dir, keys: wrong) }
            await #expect(throws: StoreError.wrongKey) { try await backend.makeStore(directory: dir, keys: wrong) }
            #expect(try await backend.fingerprint(dir) == before)

            // The right key still opens everything.
            let reopened = try await backend.makeStore(directory: dir, keys: right)
            #expect(try await reopened.user("alice")?.secret?.constantTimeEquals(secret) == true)
            try await reopened.close()
        }
    }

    @Test(arguments: Backend.all) func newerSchemaIsRefusedAndChangesNothing(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            try await enroll(store, "alice")
            try await backend.fault(dir, store, .newerSchema(version: "v10"))
            try await store.close()
            let before = try await backend.fingerprint(dir)

            await #expect(throws: StoreError.schemaTooNew(found: "v10", supported: "v9")) { try await backend.makeStore(directory: dir, keys: keys) }
            #expect(try await backend.fingerprint(dir) == before)
            // A wrong key on a newer schema reports the schema first: the key check format may have changed.
            let other = try makeKeys(in: dir, name: "other")
            await #expect(throws: StoreError.schemaTooNew(found: "v10", supported: "v9")) { try await backend.makeStore(directory: dir, keys: other) }
            #expect(try await backend.fingerprint(dir) == before)
        }
    }

    @Test(arguments: Backend.all) func importIsAllOrNone(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let secrets = try (0..<50).map { _ in try SecretBytes(randomCount: 20) }
            let records = secrets.enumerated().map { i, secret in
                EnrollmentImportRecord(user: "bulk\(i)", factor: FactorName.first, secret: secret, parameters: OTPParameters(), verify: VerifyState(),
                                       recoveryCodes: [], atMillis: 1_000)
            }
            try await store.importEnrollments(records)
            for (i, secret) in secrets.enumerated() {
                let record = try await store.user("bulk\(i)")
                #expect(record?.status == .active)
                #expect(record?.secret?.copyBytes() == secret.copyBytes())
            }
            // One bad row fails the whole batch: nothing of it is stored.
            try await backend.fault(dir, store, .failUser(name: "bad"))
            let batch = ["fresh1", "bad", "fresh2"].map {
                EnrollmentImportRecord(user: $0, factor: FactorName.first, secret: secrets[0], parameters: OTPParameters(), verify: VerifyState(),
                                       recoveryCodes: [], atMillis: 2_000)
            }
            await #expect(throws: StoreError.self) { try await store.importEnrollments(batch) }
            #expect(try await store.user("fresh1") == nil)
            #expect(try await store.user("fresh2") == nil)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func aFailedBatchFailsEveryCallerInItAndCommitsNothing(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await backend.fault(dir, store, .failAudit(action: "boom"))
            let boom = StoreMutation.audit(AuditRecord(timeMillis: 1, action: "boom", outcome: "error"))

            // One caller: the accept before the failing insert is rolled back.
            await #expect(throws: StoreError.self) { try await store.commit([accept("alice", step: 5), boom]) }
            #expect(try await store.user("alice")?.verify.lastStep == nil)

            // Many callers, one of them failing: whoever shared its batch fails too, and committed nothing.
            let users = (0..<32).map { "u\($0)" }
            for user in users { try await enroll(store, user) }
            let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
                for user in users {
                    group.addTask { (user, (try? await store.commit([accept(user, step: 9)])) == [.applied]) }
                }
                group.addTask { ("boom", (try? await store.commit([boom])) != nil) }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(outcomes["boom"] == false)
            for user in users {
                let stored = try await store.user(user)?.verify.lastStep
                #expect(stored == (outcomes[user] == true ? 9 : nil), "\(user): reported \(String(describing: outcomes[user])), stored \(String(describing: stored))")
            }
            // The store keeps working after a failed batch.
            #expect(try await store.commit([accept("alice", step: 6)]) == [.applied])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func secretCopiedToAnotherUserOrFactorDoesNotOpen(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await enroll(store, "alice", factor: "tablet")
            try await enroll(store, "bob")
            try await backend.fault(dir, store, .copySecret(fromUser: "alice", fromFactor: "app", toUser: "bob", toFactor: nil))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("bob") }) == "bob")
            #expect(try await store.user("alice")?.factors.compactMap(\.secret).count == 2)
            // The AAD names the factor too: a secret copied to another factor of the same user does not open.
            try await backend.fault(dir, store, .copySecret(fromUser: "alice", fromFactor: "app", toUser: "alice", toFactor: "tablet"))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("alice") }) == "alice")
            // Nor a row moved to another factor name.
            try await enroll(store, "dora")
            try await backend.fault(dir, store, .renameFactor(user: "dora", from: "app", to: "phone"))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("dora") }) == "dora")

            // A pending secret moved into the active slot does not open either (purpose is bound).
            try await store.beginEnrollment(user: "carol", factor: FactorName.first, secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)
            try await backend.fault(dir, store, .pendingBecomesFactor(user: "carol"))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.user("carol") }) == "carol")
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func tamperedOrTruncatedSecretIsCorrupt(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            for user in ["flip", "short", "tagless", "version"] { try await enroll(store, user) }
            // One byte of the ciphertext changed; cut in the nonce; the tag's last byte gone; an unknown format.
            try await backend.fault(dir, store, .damageSecret(user: "flip", .changeByte(index: 19)))
            try await backend.fault(dir, store, .damageSecret(user: "short", .truncate(count: 20)))
            try await backend.fault(dir, store, .damageSecret(user: "tagless", .dropLastByte))
            try await backend.fault(dir, store, .damageSecret(user: "version", .unknownVersion))
            for user in ["flip", "short", "tagless", "version"] {
                let error = await #expect(throws: StoreError.self) { try await store.user(user) }
                #expect(corruptUser(error) == user, "\(user): \(String(describing: error))")
            }
            // Listing does not open secrets, so it still works.
            #expect(try await store.listUsers(after: nil, limit: 10).count == 4)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func recoveryCodeMovedToAnotherIndexOrUserDoesNotOpen(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let codes = try (0..<3).map { _ in try RecoveryCodes.makeHash(canonical: "0123456789", pepper: keys.recoveryPepper) }
            try await enroll(store, "alice", codes: codes)
            try await enroll(store, "bob", codes: codes)
            try await backend.fault(dir, store, .copyRecoveryCode(fromUser: "alice", fromIndex: 0, toUser: "alice", toIndex: 1))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.recoveryCodes(user: "alice") }) == "alice")
            try await backend.fault(dir, store, .copyRecoveryCode(fromUser: "alice", fromIndex: 2, toUser: "bob", toIndex: 2))
            #expect(corruptUser(await #expect(throws: StoreError.self) { try await store.recoveryCodes(user: "bob") }) == "bob")
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func listUsersPagesByNameWithoutOpeningSecrets(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let names = (0..<25).map { String(format: "user%02d", $0) }.shuffled()
            let code = try RecoveryCodes.makeHash(canonical: "2222222222", pepper: keys.recoveryPepper)
            for name in names { try await enroll(store, name, codes: [code, code, code]) }
            try await store.setRequirement(user: "aaron", .exempt)
            _ = try await store.commit([.accept(user: "user03", use: .recoveryCode(index: 1), atMillis: 9)])
            // A damaged secret does not stop the listing.
            try await backend.fault(dir, store, .damageSecret(user: "user07", .truncate(count: 1)))

            var seen: [UserRecord] = []
            var after: String?
            var pages = 0
            while true {
                let page = try await store.listUsers(after: after, limit: 10)
                if page.isEmpty { break }
                pages += 1
                #expect(page.count <= 10)
                seen += page
                after = page.last?.name
            }
            #expect(pages == 3)
            #expect(seen.map(\.name) == ["aaron"] + names.sorted())
            #expect(seen.allSatisfy { $0.secret == nil })
            #expect(seen.first?.status == nil && seen.first?.requirement == .exempt)
            #expect(seen.dropFirst().allSatisfy { $0.status == .active && $0.enrolledAtMillis == 1_000 })
            #expect(seen.first { $0.name == "user03" }?.recoveryCodesLeft == 2)
            #expect(seen.first { $0.name == "user04" }?.recoveryCodesLeft == 3)
            #expect(try await store.listUsers(after: "user20", limit: 100).map(\.name) == ["user21", "user22", "user23", "user24"])
            #expect(try await store.listUsers(after: nil, limit: 0).isEmpty)
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func closedStoreRefusesCalls(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await enroll(store, "alice")
            try await store.close()
            try await store.close()
            await #expect(throws: StoreError.self) { try await store.user("alice") }
            await #expect(throws: StoreError.self) { try await store.commit([accept("alice", step: 1)]) }
            await #expect(throws: StoreError.self) { try await store.setSetting("a", value: "b") }
        }
    }
}
