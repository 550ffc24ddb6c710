import Foundation
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

// Helpers the store's tests share: the conformance suite (every backend) and the SQLite-specific
// tests. One place, so both enroll and accept the same way.

/// A fresh directory under the system temp dir, removed afterwards.
public func withTempDir<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-store-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Keys from a key file in `dir` (created on first use).
public func makeKeys(in dir: String, name: String = "key") throws -> SealingKeys {
    try SealingKeys.loadOrCreate(keyFile: dir + "/" + name)
}

/// An active TOTP enrollment for `user` with a fresh 20-byte secret (returned), no step used yet.
@discardableResult
public func enroll(_ store: any TwofoldStore, _ user: String, codes: [RecoveryCodeHash] = [], verify: VerifyState = VerifyState(),
            parameters: OTPParameters = OTPParameters(), factor: String = FactorName.first) async throws -> SecretBytes {
    let secret = try SecretBytes(randomCount: 20)
    try await store.importEnrollment(EnrollmentImportRecord(user: user, factor: factor, secret: secret, parameters: parameters, verify: verify,
                                                            recoveryCodes: codes, atMillis: 1_000))
    return secret
}

/// A TOTP step of factor `factor` used by a login.
public func accept(_ user: String, step: Int64, at millis: Int64 = 2_000, factor: String = FactorName.first,
            policy: ThrottlePolicy = ThrottlePolicy()) -> StoreMutation {
    .accept(user: user, use: .timeStep(factor: factor, step: step, offset: 0, verify: VerifyState(lastStep: step)), atMillis: millis, policy: policy)
}

/// Tests of single-factor behaviour read the user's only factor.
extension UserRecord {
    public var secret: SecretBytes? { factors.first?.secret }
    public var verify: VerifyState { factors.first?.verify ?? VerifyState() }
}

/// Runs rekey steps of `limit` values from the start of the store to its end; their totals.
public func rekeyAll(_ store: any TwofoldStore, limit: Int = 3) async throws -> ResealBatch {
    var total = ResealBatch()
    var cursor: String?
    repeat {
        let batch = try await store.resealSecrets(after: cursor, limit: limit)
        total.resealed += batch.resealed
        total.alreadyCurrent += batch.alreadyCurrent
        total.changed += batch.changed
        total.unreadable += batch.unreadable
        cursor = batch.next
    } while cursor != nil
    return total
}
