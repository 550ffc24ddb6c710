import Logging
import TwofoldSQLite
import TwofoldStore

/// The one place in the daemon that names a store backend: everything else holds `any TwofoldStore`.
/// A new backend (PostgreSQL) is chosen here from the configuration.
enum StoreFactory {
    /// Opens the store the configuration names: today always the embedded SQLite database at
    /// `resolvedDatabasePath`, sealing with the keyring's sealing key.
    static func makeStore(configuration: DaemonConfiguration, keyring: Keyring, logger: Logger) throws -> any TwofoldStore {
        try SQLiteStore(path: configuration.resolvedDatabasePath, keyring: keyring, logger: logger)
    }

    /// What the configured store says of `keyring` without changing anything (`--check-config`):
    /// the keys it knows and those a start would register; nil when it does not exist yet.
    /// Throws `StoreError.wrongKey` when it knows none of them.
    static func checkKeys(configuration: DaemonConfiguration, keyring: Keyring) throws -> (known: [KeyID], toRegister: [KeyID])? {
        try SQLiteStore.checkKeys(path: configuration.resolvedDatabasePath, keyring: keyring)
    }
}
