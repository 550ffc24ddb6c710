import Foundation
import Testing
import TwofoldCrypto
@testable import TwofoldStore

@Suite struct SealingKeysTests {
    @Test func createsKeyFileWithMode0600And32Bytes() async throws {
        try await withTempDir { dir in
            let path = dir + "/key"
            let first = try SealingKeys.loadOrCreate(keyFile: path)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            #expect((attributes[.size] as? Int) == 32)

            // Loading again gives the same keys, derived as documented.
            let again = try SealingKeys.loadOrCreate(keyFile: path)
            #expect(first.secretKey.constantTimeEquals(again.secretKey))
            #expect(first.recoveryPepper.constantTimeEquals(again.recoveryPepper))
            let master = try #require(FileManager.default.contents(atPath: path))
            #expect(again.secretKey.copyBytes() == Crypto.hmac(.sha256, key: Array(master), data: Array("twofold v1 seal".utf8)))
            #expect(again.recoveryPepper.copyBytes() == Crypto.hmac(.sha256, key: Array(master), data: Array("twofold v1 recovery pepper".utf8)))
            #expect(!first.secretKey.constantTimeEquals(first.recoveryPepper))

            // Another file gets another key.
            let other = try SealingKeys.loadOrCreate(keyFile: dir + "/other")
            #expect(!other.secretKey.constantTimeEquals(first.secretKey))
        }
    }

    @Test func refusesGroupOrWorldAccessibleFile() async throws {
        try await withTempDir { dir in
            let path = dir + "/key"
            let master = try Crypto.randomBytes(32)
            for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
                try? FileManager.default.removeItem(atPath: path)
                #expect(FileManager.default.createFile(atPath: path, contents: Data(master), attributes: [.posixPermissions: mode]))
                let error = #expect(throws: StoreError.self) { try SealingKeys.loadOrCreate(keyFile: path) }
                guard case .badKeyFile(let reason)? = error else {
                    Issue.record("expected badKeyFile for mode \(String(mode, radix: 8)), got \(String(describing: error))")
                    continue
                }
                #expect(reason.contains(path))
                // The reason never shows the key.
                #expect(!reason.contains(master.map { String(format: "%02x", $0) }.joined()))
            }
            // The same bytes with 0600 (or 0400) are accepted.
            try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: path)
            _ = try SealingKeys.loadOrCreate(keyFile: path)
        }
    }

    @Test func refusesWrongSizeDirectoryAndSymlink() async throws {
        try await withTempDir { dir in
            for size in [0, 16, 31, 33, 64] {
                let path = dir + "/key\(size)"
                #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: size), attributes: [.posixPermissions: 0o600]))
                let error = #expect(throws: StoreError.self) { try SealingKeys.loadOrCreate(keyFile: path) }
                guard case .badKeyFile(let reason)? = error else {
                    Issue.record("expected badKeyFile for size \(size), got \(String(describing: error))")
                    continue
                }
                #expect(reason.contains(path) && reason.contains("32"))
                // A bad file is left alone.
                #expect(FileManager.default.contents(atPath: path)?.count == size)
            }

            let directory = dir + "/keydir"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            let dirError = #expect(throws: StoreError.self) { try SealingKeys.loadOrCreate(keyFile: directory) }
            #expect(dirError == .badKeyFile("\(directory) is not a regular file"))

            let target = dir + "/real"
            _ = try SealingKeys.loadOrCreate(keyFile: target)
            let link = dir + "/link"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            let linkError = #expect(throws: StoreError.self) { try SealingKeys.loadOrCreate(keyFile: link) }
            #expect(linkError == .badKeyFile("\(link) is a symbolic link"))

            let missingDir = dir + "/missing/key"
            let createError = #expect(throws: StoreError.self) { try SealingKeys.loadOrCreate(keyFile: missingDir) }
            guard case .badKeyFile(let reason)? = createError else {
                Issue.record("expected badKeyFile, got \(String(describing: createError))")
                return
            }
            #expect(reason.contains(missingDir))
        }
    }

    @Test func readsSystemdCredentialWithoutPermissionCheck() async throws {
        try await withTempDir { dir in
            let master = try Crypto.randomBytes(32)
            // systemd's credential files are read-only; their mode is not ours to judge.
            #expect(FileManager.default.createFile(atPath: dir + "/twofold.key", contents: Data(master), attributes: [.posixPermissions: 0o444]))
            let keys = try SealingKeys.fromCredential(directory: dir, name: "twofold.key")
            #expect(keys.secretKey.copyBytes() == Crypto.hmac(.sha256, key: master, data: Array("twofold v1 seal".utf8)))
            let slashed = try SealingKeys.fromCredential(directory: dir + "/", name: "twofold.key")
            #expect(slashed.secretKey.constantTimeEquals(keys.secretKey))

            #expect(FileManager.default.createFile(atPath: dir + "/short", contents: Data(master.prefix(31)), attributes: [.posixPermissions: 0o400]))
            #expect(throws: StoreError.self) { try SealingKeys.fromCredential(directory: dir, name: "short") }
            #expect(throws: StoreError.self) { try SealingKeys.fromCredential(directory: dir, name: "absent") }
            #expect(throws: StoreError.self) { try SealingKeys.fromCredential(directory: dir, name: "../twofold.key") }
            #expect(throws: StoreError.self) { try SealingKeys.fromCredential(directory: dir, name: "") }
        }
    }

    @Test func masterKeyMustBe32Bytes() throws {
        #expect(throws: StoreError.self) { try SealingKeys(master: SecretBytes([UInt8](repeating: 1, count: 31))) }
        #expect(throws: StoreError.self) { try SealingKeys(master: SecretBytes([UInt8](repeating: 1, count: 33))) }
        let a = try SealingKeys(master: SecretBytes([UInt8](repeating: 1, count: 32)))
        let b = try SealingKeys(master: SecretBytes([UInt8](repeating: 2, count: 32)))
        #expect(!a.secretKey.constantTimeEquals(b.secretKey))
        #expect(a.secretKey.count == 32 && a.recoveryPepper.count == 32)
    }

    @Test func aKeyForARotationIsMadeOnlyWhereNoneIsAndLoadedOnlyWhereOneIs() async throws {
        try await withTempDir { dir in
            let made = try SealingKeys.createNew(keyFile: dir + "/new")
            #expect((try FileManager.default.attributesOfItem(atPath: dir + "/new")[.posixPermissions] as? Int) == 0o600)
            #expect(try SealingKeys.load(keyFile: dir + "/new").id == made.id)
            #expect(throws: StoreError.self) { try SealingKeys.createNew(keyFile: dir + "/new") }
            #expect(try SealingKeys.load(keyFile: dir + "/new").id == made.id, "an existing key is never overwritten")
            #expect(throws: StoreError.self) { try SealingKeys.load(keyFile: dir + "/typo") }
            #expect(!FileManager.default.fileExists(atPath: dir + "/typo"))
        }
    }
}
