import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// Admin calls against damage only SQL can cause (a damaged secret, a failing row); the rest of the
/// admin tests run against every backend in TwofoldStoreConformanceTests.
@Suite struct AdminTests {
    @Test func listUsersPagesByNameWithoutOpeningSecrets() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try openStore(dir, keys: keys)
            let names = (0..<25).map { String(format: "user%02d", $0) }.shuffled()
            let code = try RecoveryCodes.makeHash(canonical: "2222222222", pepper: keys.recoveryPepper)
            for name in names { try await enroll(store, name, codes: [code, code, code]) }
            try await store.setRequirement(user: "aaron", .exempt)
            _ = try await store.commit([.accept(user: "user03", use: .recoveryCode(index: 1), atMillis: 9)])
            // A damaged secret does not stop the listing.
            try store.testingExecute("UPDATE factors SET secret = x'00' WHERE user = 'user07'")

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

    @Test func bulkImportStoresEveryUserInOneTransactionOrNone() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
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
            try store.testingExecute("CREATE TRIGGER boom BEFORE INSERT ON users WHEN NEW.name = 'bad' BEGIN SELECT RAISE(ABORT, 'boom'); END")
            let batch = ["fresh1", "bad", "fresh2"].map {
                EnrollmentImportRecord(user: $0, factor: FactorName.first, secret: secrets[0], parameters: OTPParameters(), verify: VerifyState(), recoveryCodes: [], atMillis: 2_000)
            }
            await #expect(throws: StoreError.self) { try await store.importEnrollments(batch) }
            #expect(try await store.user("fresh1") == nil)
            #expect(try await store.user("fresh2") == nil)
            try await store.close()
        }
    }
}
