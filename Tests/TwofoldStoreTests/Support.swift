import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

/// A fresh directory under the system temp dir, removed afterwards.
func withTempDir<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-store-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Keys from a key file in `dir` (created on first use).
func makeKeys(in dir: String, name: String = "key") throws -> SealingKeys {
    try SealingKeys.loadOrCreate(keyFile: dir + "/" + name)
}

func openStore(_ dir: String, keys: SealingKeys) throws -> SQLiteStore {
    try SQLiteStore(path: dir + "/twofold.db", keys: keys)
}

/// An active TOTP enrollment for `user` with a fresh 20-byte secret (returned), no step used yet.
@discardableResult
func enroll(_ store: SQLiteStore, _ user: String, codes: [RecoveryCodeHash] = [], verify: VerifyState = VerifyState(),
            parameters: OTPParameters = OTPParameters(), factor: String = FactorName.first) async throws -> SecretBytes {
    let secret = try SecretBytes(randomCount: 20)
    try await store.importEnrollment(EnrollmentImportRecord(user: user, factor: factor, secret: secret, parameters: parameters, verify: verify,
                                                            recoveryCodes: codes, atMillis: 1_000))
    return secret
}

/// A TOTP step of factor `factor` used by a login.
func accept(_ user: String, step: Int64, at millis: Int64 = 2_000, factor: String = FactorName.first,
            policy: ThrottlePolicy = ThrottlePolicy()) -> StoreMutation {
    .accept(user: user, use: .timeStep(factor: factor, step: step, offset: 0, verify: VerifyState(lastStep: step)), atMillis: millis, policy: policy)
}

/// Tests of single-factor behaviour read the user's only factor.
extension UserRecord {
    var secret: SecretBytes? { factors.first?.secret }
    var verify: VerifyState { factors.first?.verify ?? VerifyState() }
}

/// The bytes of every file of the database (main, -wal, -shm when present), by suffix.
func databaseFiles(_ dir: String) -> [String: [UInt8]] {
    var files: [String: [UInt8]] = [:]
    for suffix in ["", "-wal", "-shm"] {
        if let data = FileManager.default.contents(atPath: dir + "/twofold.db" + suffix) {
            files[suffix] = Array(data)
        }
    }
    return files
}

/// True if `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    let last = haystack.count - needle.count
    while i <= last {
        if haystack[i] == first, haystack[i ..< i + needle.count].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}

/// The user of a `.corruptRecord`, or nil for any other error.
func corruptUser(_ error: StoreError?) -> String? {
    if case .corruptRecord(let user, _)? = error { return user }
    return nil
}
