import Logging
import TwofoldSQLite
import TwofoldStore

/// The one place in the daemon that names a store backend: everything else holds `any TwofoldStore`.
/// A new backend (PostgreSQL) is chosen here from the configuration.
enum StoreFactory {
    /// Opens the store the configuration names: today always the embedded SQLite database at
    /// `resolvedDatabasePath`.
    static func makeStore(configuration: DaemonConfiguration, keys: SealingKeys, logger: Logger) throws -> any TwofoldStore {
        try SQLiteStore(path: configuration.resolvedDatabasePath, keys: keys, logger: logger)
    }
}
