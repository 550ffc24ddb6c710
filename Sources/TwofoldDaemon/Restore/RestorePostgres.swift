import TwofoldStore

/// `twofoldd restore --postgresql`: the same rules on the config's PostgreSQL database, which the
/// admin restored (pg_restore of a pg_dump, or a base backup and its WAL). Opening it checks the
/// key and migrates an older schema as the daemon would.
enum RestorePostgres {
    static func run(_ context: Restore.Context) async throws -> RestoreReport {
        guard let taken = context.takenAt else {
            throw ConfigurationError("--postgresql needs --taken-at TIME: when the dump or base backup was taken "
                + "(a database keeps no manifest of its own)")
        }
        guard !context.options.dryRun else {
            throw ConfigurationError("--dry-run works on a SQLite backup's private copy; for PostgreSQL restore the dump into a "
                + "scratch database first and point a copy of twofoldd.conf at it")
        }
        let configuration = context.configuration
        let store: any TwofoldStore
        do {
            store = try await StoreFactory.makeStore(configuration: configuration, keyring: context.keyring, environment: context.environment,
                                                     logger: context.logger, observer: StoreObserver())
        } catch StoreError.wrongKey {
            throw ConfigurationError("the database was not sealed with the key file given (\(configuration.resolvedKeyFile)) or a previous key")
        }
        var report = RestoreReport(source: "the PostgreSQL database", destination: StoreFactory.location(configuration), dryRun: false,
                                   takenMillis: taken, nowMillis: context.clock.nowMillis())
        do {
            try await Restore.secure(store, context, into: &report)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        return report
    }
}
