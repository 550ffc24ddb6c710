import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Secrets sealed at rest come back as they went in. Runs against every backend (the tampering
/// tests, which write raw rows, stay with each backend's own tests).
@Suite struct EncryptionTests {
    @Test(arguments: Backend.all) func secretRoundTripsAndGeneratesTheSameCodes(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let parameters = OTPParameters(method: .totp, algorithm: .sha256, digits: 8, period: 60)
            let secret = try await enroll(store, "alice", parameters: parameters)
            let alice = try #require(try await store.user("alice"))
            let opened = try #require(alice.secret)
            #expect(alice.status == .active)
            #expect(alice.factors.first?.parameters == parameters)
            #expect(OneTimeCode.totp(secret: opened, unixTime: 1_700_000_000, parameters: parameters)
                    == OneTimeCode.totp(secret: secret, unixTime: 1_700_000_000, parameters: parameters))
            try await store.close()
        }
    }
}
