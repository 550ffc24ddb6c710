import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// Sealing as the SQLite file holds it: no plaintext in the file. The round trip, a wrong key and
/// tampered or moved blobs run against every backend in TwofoldStoreConformanceTests (FaultTests).
@Suite struct EncryptionTests {
    @Test func plaintextNeverReachesTheFile() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try openStore(dir, keys: keys)
            let secret = try SecretBytes(randomCount: 20)
            let pending = try SecretBytes(randomCount: 20)
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: keys.recoveryPepper)
            try await store.importEnrollment(EnrollmentImportRecord(user: "alice", factor: FactorName.first, secret: secret, parameters: OTPParameters(),
                                                                    verify: VerifyState(), recoveryCodes: [code], atMillis: 1))
            try await store.beginEnrollment(user: "alice", factor: FactorName.first, secret: pending, parameters: OTPParameters(), atMillis: 2)
            try await store.beginEnrollment(user: "bob", factor: FactorName.first, secret: pending, parameters: OTPParameters(), atMillis: 3)
            try await store.activateEnrollment(user: "bob", recoveryCodes: [code], verify: VerifyState(), atMillis: 4)

            let needles = [secret.copyBytes(), pending.copyBytes(), code.hash, code.salt]
            // While open (WAL) and after close (checkpointed into the main file).
            for files in [databaseFiles(dir)] {
                for (_, bytes) in files { for needle in needles { #expect(!contains(bytes, needle)) } }
            }
            try await store.close()
            let closed = databaseFiles(dir)
            #expect((closed[""]?.count ?? 0) > 0)
            for (_, bytes) in closed { for needle in needles { #expect(!contains(bytes, needle)) } }
            // The search itself works: the user name is there in the clear.
            #expect(contains(closed[""] ?? [], Array("alice".utf8)))
        }
    }
}
