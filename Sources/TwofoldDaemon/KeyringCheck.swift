import TwofoldStore

/// The keys part of `twofoldd --check-config`, and `twofoldd --new-key-file`.
public enum KeyringCheck {
    /// Reads every configured key (creating none) and asks the database, read only, which of them
    /// it knows: one line per key for the operator. Throws what a start would fail with: a bad key
    /// file, or a keyring the database knows no key of.
    public static func report(configuration: DaemonConfiguration, environment: [String: String]) async throws -> [String] {
        guard let keys = try DaemonKeys.load(configuration: configuration, environment: environment, create: false) else {
            return ["key file \(configuration.resolvedKeyFile) does not exist yet: twofoldd creates it at the first start"]
        }
        let database = StoreFactory.location(configuration)
        let status: (known: [KeyID], toRegister: [KeyID])?
        do {
            status = try await StoreFactory.checkKeys(configuration: configuration, keyring: keys.keyring, environment: environment)
        } catch StoreError.wrongKey {
            throw keys.unknownToDatabase(database)
        }
        let sealing = keys.keyring.sealing.id
        return keys.origins.map { id, origin in
            let role = id == sealing ? "sealing key" : "previous key"
            let state = switch status {
            case nil: configuration.store == .sqlite ? "the database \(database) does not exist yet"
                : "the database \(database) holds no Twofold data yet: the first start creates it"
            case let status? where status.known.contains(id): "known to the database"
            case _?: "new to the database: registered at the next start (next to a key it knows)"
            }
            return "\(role) \(id) (\(origin)): \(state)"
        }
    }

    /// Creates a new key file for a rotation (32 random bytes, mode 0600; an existing file is never
    /// touched) and returns its id.
    public static func createKeyFile(_ path: String) throws -> String {
        try SealingKeys.createNew(keyFile: path).id.hex
    }
}
