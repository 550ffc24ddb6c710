import Foundation
import Logging
import TwofoldCore
import TwofoldCrypto
import TwofoldStore
#if canImport(Glibc)
import Glibc
#endif

/// The store of a host being moved in, read on a private copy: opening a store migrates an older
/// schema and registers keys, and the host's own file (its backup) must stay as it was. The copy
/// lives in a directory of mode 0700 and is removed by `close`.
struct HostStore {
    let store: any TwofoldStore
    /// The host's recovery pepper: the store's own, or the one its key derives (stores from before v4).
    let pepper: SecretBytes
    private let directory: String

    /// Copies `database` (and its WAL, which may hold the last commits) and opens the copy with the
    /// host's key (`keyFile`, then `previousKeyFiles` for a host in the middle of a rotation).
    static func open(database: String, keyFile: String, previousKeyFiles: [String], logger: Logger) async throws -> HostStore {
        let keyring = Keyring(sealing: try SealingKeys.load(keyFile: keyFile), previous: try previousKeyFiles.map { try SealingKeys.load(keyFile: $0) })
        guard FileManager.default.fileExists(atPath: database) else { throw ConfigurationError("--database \(database) does not exist") }
        var template = Array("/tmp/twofold-move-in-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ConfigurationError("cannot make a directory for the copy of \(database)") }
        let directory = String(cString: made)
        do {
            let copy = directory + "/twofold.sqlite"
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: database + suffix) {
                try FileManager.default.copyItem(atPath: database + suffix, toPath: copy + suffix)
            }
            let store = try StoreFactory.openSQLite(path: copy, keyring: keyring, logger: logger)
            guard let pepper = try? await store.recoveryPepper() else {
                try? await store.close()
                throw ConfigurationError("the recovery pepper of \(database) cannot be read")
            }
            return HostStore(store: store, pepper: pepper, directory: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    func close() async {
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The host's users, a page at a time in name order, each with its secrets opened, its
    /// unused recovery codes carrying the pepper they were made with, and its SSH keys.
    func users(after name: String?, limit: Int, atMillis: Int64) async throws -> [MovedUser] {
        var moved: [MovedUser] = []
        for listed in try await store.listUsers(after: name, limit: limit) {
            guard let record = try await store.user(listed.name) else { continue }
            let codes = try await store.recoveryCodes(user: record.name).map { _, hash in
                RecoveryCodeHash(salt: hash.salt, hash: hash.hash, pepper: hash.pepper ?? pepper)
            }
            moved.append(MovedUser(record: record, recoveryCodes: codes, hostPepper: pepper, atMillis: atMillis,
                                   sshKeys: try await store.sshKeys(user: record.name)))
        }
        return moved
    }
}
