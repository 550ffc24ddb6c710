#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TwofoldStore

/// The daemon's keyring and where each key came from. The sealing key is `key_file`, else the
/// systemd credential `twofold.key`, else `<state_directory>/twofold.key`; the previous keys are
/// `previous_key_files` and the credentials named `twofold.previous-key` or `twofold.previous-key.*`.
///
/// The sealing key file is created only at a first start, with no previous key configured: during
/// a rotation every file must exist, so a mistyped path is an error, never a new key.
struct DaemonKeys: Sendable {
    static let credential = "twofold.key"
    static let previousCredential = "twofold.previous-key"

    let keyring: Keyring
    /// "file" or "credential": where the sealing key came from.
    let sealingSource: String
    /// Each key's id and origin ("/path" or "credential NAME"), the sealing key first.
    let origins: [(id: KeyID, origin: String)]

    /// Loads every key. With `create` false nothing is created: nil when the sealing key file does
    /// not exist yet and a start would create it (no previous keys, no credential).
    static func load(configuration: DaemonConfiguration, environment: [String: String], create: Bool) throws -> DaemonKeys? {
        let credentials = environment["CREDENTIALS_DIRECTORY"]
        var previous: [(keys: SealingKeys, origin: String)] = []
        for file in configuration.previousKeyFiles {
            previous.append((try prefixed("previous key") { try SealingKeys.load(keyFile: file) }, file))
        }
        for name in credentials.map(previousCredentialNames(in:)) ?? [] {
            previous.append((try prefixed("previous key") { try SealingKeys.fromCredential(directory: credentials!, name: name) }, "credential \(name)"))
        }
        let sealing: SealingKeys
        let source: String, origin: String
        if configuration.keyFile == nil, let credentials, access(credentials + "/" + credential, R_OK) == 0 {
            sealing = try SealingKeys.fromCredential(directory: credentials, name: credential)
            (source, origin) = ("credential", "credential \(credential)")
        } else {
            let path = configuration.resolvedKeyFile
            if previous.isEmpty && create {
                sealing = try SealingKeys.loadOrCreate(keyFile: path)
            } else if previous.isEmpty && !exists(path) {
                return nil
            } else if !exists(path) {
                throw StoreError.badKeyFile("\(path) does not exist; with previous keys configured twofoldd never creates its sealing key "
                    + "(a mistyped path must not become a new key): make the new key with `twofoldd --new-key-file \(path)`")
            } else {
                sealing = try SealingKeys.load(keyFile: path)
            }
            (source, origin) = ("file", path)
        }
        let keyring = Keyring(sealing: sealing, previous: previous.map(\.keys))
        let origins = [(sealing.id, origin)] + keyring.previous.map { member in (member.id, previous.first { $0.keys.id == member.id }!.origin) }
        return DaemonKeys(keyring: keyring, sealingSource: source, origins: origins)
    }

    /// "sealing key ID (ORIGIN), previous keys ID (ORIGIN), ...": for logs and errors.
    var summary: String {
        let sealing = "sealing key \(origins[0].id) (\(origins[0].origin))"
        guard origins.count > 1 else { return sealing }
        return sealing + ", previous key" + (origins.count > 2 ? "s " : " ") + origins.dropFirst().map { "\($0.id) (\($0.origin))" }.joined(separator: ", ")
    }

    /// The refusal to start when the database knows none of the keys.
    func unknownToDatabase(_ database: String) -> ConfigurationError {
        ConfigurationError("no key twofoldd holds (\(summary)) is one the database \(database) knows: a wrong or mistyped key file? "
            + "A new key is accepted only next to one the database knows (as a previous key: previous_key_files in twofoldd.conf(5))")
    }

    /// The credentials that are previous keys, by name.
    static func previousCredentialNames(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0 == previousCredential || $0.hasPrefix(previousCredential + ".") }.sorted()
    }

    private static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 || errno != ENOENT
    }

    /// A key file error with what the key is for in front ("previous key file: ...").
    private static func prefixed<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch StoreError.badKeyFile(let reason) {
            throw StoreError.badKeyFile("\(what): \(reason)")
        }
    }
}
