import Logging
import TwofoldPostgres
import TwofoldSQLite
import TwofoldStore

/// The one place in the daemon that names a store backend: everything else holds `any TwofoldStore`.
/// A new backend is a case of `StoreKind` and a branch here.
enum StoreFactory {
    /// The systemd credential that holds the PostgreSQL password when `postgresql_password_file` is not set.
    static let passwordCredential = "postgresql-password"

    /// Opens the store the configuration names, sealing with the keyring's sealing key: the embedded
    /// SQLite database at `resolvedDatabasePath`, or the PostgreSQL database at `postgresql_url`
    /// (creating the schema on an empty one). `observer` hears of its batches and reconnects.
    static func makeStore(configuration: DaemonConfiguration, keyring: Keyring, environment: [String: String],
                          logger: Logger, observer: StoreObserver) async throws -> any TwofoldStore {
        switch configuration.store {
        case .sqlite:
            return try SQLiteStore(path: configuration.resolvedDatabasePath, keyring: keyring, logger: logger, observer: observer)
        case .postgresql:
            let settings = try postgresConfiguration(configuration, environment: environment)
            logger.info("store: PostgreSQL", metadata: ["host": "\(settings.host)", "port": "\(settings.port)",
                                                         "database": "\(settings.database)", "sslmode": "\(settings.tls.rawValue)"])
            return try await PostgresStore(configuration: settings, keyring: keyring, logger: logger, observer: observer)
        }
    }

    /// A single host's SQLite store at `path`, opened with that host's keyring (`twofoldd move-in`,
    /// on a private copy of the host's file: opening migrates an older schema).
    static func openSQLite(path: String, keyring: Keyring, logger: Logger) throws -> any TwofoldStore {
        try SQLiteStore(path: path, keyring: keyring, logger: logger)
    }

    /// What the configured store says of `keyring` without changing anything (`--check-config`):
    /// the keys it knows and those a start would register; nil when it does not exist yet (no SQLite
    /// file, or no Twofold schema in the PostgreSQL database). Throws `StoreError.wrongKey` when it
    /// knows none of them, and the connection's error when PostgreSQL cannot be reached.
    static func checkKeys(configuration: DaemonConfiguration, keyring: Keyring,
                          environment: [String: String]) async throws -> (known: [KeyID], toRegister: [KeyID])? {
        switch configuration.store {
        case .sqlite:
            return try SQLiteStore.checkKeys(path: configuration.resolvedDatabasePath, keyring: keyring)
        case .postgresql:
            return try await PostgresStore.checkKeys(configuration: postgresConfiguration(configuration, environment: environment), keyring: keyring)
        }
    }

    /// A stored setting of the configured store, changing nothing (`--check-config`); nil when the
    /// store or the setting does not exist yet.
    static func storedSetting(_ key: String, configuration: DaemonConfiguration, environment: [String: String]) async throws -> String? {
        switch configuration.store {
        case .sqlite:
            return try SQLiteStore.storedSetting(path: configuration.resolvedDatabasePath, key: key)
        case .postgresql:
            return try await PostgresStore.storedSetting(configuration: postgresConfiguration(configuration, environment: environment), key: key)
        }
    }

    /// Where the store lives, for `serverInfo`, the logs and errors: a path, or the PostgreSQL URL
    /// (which holds no password).
    static func location(_ configuration: DaemonConfiguration) -> String {
        switch configuration.store {
        case .sqlite: return configuration.resolvedDatabasePath
        case .postgresql: return configuration.postgresqlURL ?? "postgresql"
        }
    }

    /// The PostgreSQL settings: the URL, the password from its file or credential, the daemon's bounds.
    static func postgresConfiguration(_ configuration: DaemonConfiguration, environment: [String: String]) throws -> PostgresStoreConfiguration {
        guard let url = configuration.postgresqlURL else { throw ConfigurationError("store = postgresql needs postgresql_url") }
        var password: String?
        if let file = configuration.postgresqlPasswordFile {
            password = try PasswordFile.firstLine(of: file, checkPermissions: true)
        } else if let credentials = environment["CREDENTIALS_DIRECTORY"], access(credentials + "/" + passwordCredential, R_OK) == 0 {
            password = try PasswordFile.firstLine(of: credentials + "/" + passwordCredential, checkPermissions: false)
        }
        var settings: PostgresStoreConfiguration
        do {
            settings = try PostgresStoreConfiguration(url: url, password: password)
        } catch let error as PostgresConfigurationError {
            throw ConfigurationError("postgresql_url: \(error.description)")
        }
        settings.connectTimeout = .milliseconds(configuration.postgresqlConnectTimeoutMillis)
        settings.statementTimeout = .milliseconds(configuration.postgresqlStatementTimeoutMillis)
        settings.maximumConnections = configuration.postgresqlPoolSize
        return settings
    }
}

#if canImport(Glibc)
import Glibc
#endif
