import Foundation
import TwofoldSQLite
import TwofoldStore

/// A single host's store from a SQLite backup: checked and made safe on a private copy next to
/// the database, which then takes its place by rename. A failure anywhere leaves the state as it
/// was: the copy is removed (and the state directory, when the restore made it).
enum RestoreSQLite {
    static func run(from backup: String, _ context: Restore.Context) async throws -> RestoreReport {
        var st = stat()
        guard stat(backup, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw ConfigurationError("--from \(backup) is not a file") }
        let database = context.configuration.resolvedDatabasePath
        let directory = (database as NSString).deletingLastPathComponent
        if !context.options.replace, let existing = ["", "-wal"].map({ database + $0 }).first(where: RestoreFiles.exists) {
            throw ConfigurationError("\(existing) exists: give --replace to restore over it (it is kept as "
                + "\((database as NSString).lastPathComponent).before-restore-TIME)")
        }
        let made = try RestoreFiles.ensureDirectory(directory)
        let staging: String
        do {
            staging = try RestoreFiles.makeStaging(in: directory)
        } catch {
            if made { RestoreFiles.remove(directory) }
            throw error
        }
        do {
            let report = try await restore(backup, database: database, staging: staging, context)
            RestoreFiles.remove(staging)
            if made && report.dryRun { RestoreFiles.remove(directory) }
            return report
        } catch {
            RestoreFiles.remove(staging)
            if made { RestoreFiles.remove(directory) }
            throw error
        }
    }

    private static func restore(_ backup: String, database: String, staging: String, _ context: Restore.Context) async throws -> RestoreReport {
        let copy = staging + "/twofold.sqlite"
        try RestoreFiles.copy(backup, to: copy)
        // A plain copy of a live store may come with its WAL (the last commits).
        if RestoreFiles.exists(backup + "-wal") { try RestoreFiles.copy(backup + "-wal", to: copy + "-wal") }
        let inspection: BackupInspection
        do {
            inspection = try SQLiteStore.inspectBackup(path: copy, keyring: context.keyring)
        } catch StoreError.wrongKey {
            throw ConfigurationError("the backup \(backup) was not sealed with the key file given (\(context.configuration.resolvedKeyFile)) "
                + "or a previous key: give the key it was taken with (--key-file, previous_key_files)")
        } catch let error as StoreError {
            throw ConfigurationError("the backup \(backup) is refused: \(error)")
        }
        let taken = try takenMillis(inspection.manifest, context, backup: backup)
        var report = RestoreReport(source: "the backup \(backup)", destination: database, dryRun: context.options.dryRun,
                                   takenMillis: taken, nowMillis: context.clock.nowMillis())
        report.takenFromHost = inspection.manifest?.host
        report.takenByVersion = inspection.manifest?.twofoldVersion
        report.schema = inspection.schema
        report.migrated = inspection.needsMigration
        let store = try StoreFactory.openSQLite(path: copy, keyring: context.keyring, logger: context.logger)
        do {
            try await Restore.secure(store, context, into: &report)
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
        try SQLiteStore.makeSelfContained(path: copy)
        guard !context.options.dryRun else { return report }
        try put(copy, in: database, &report)
        return report
    }

    /// The manifest's time; for a plain copy of a store, --taken-at; with both, the earlier (more
    /// of the audit is then re-applied, never less).
    private static func takenMillis(_ manifest: BackupManifest?, _ context: Restore.Context, backup: String) throws -> Int64 {
        switch (manifest?.takenMillis, context.takenAt) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil):
            throw ConfigurationError("\(backup) is a copy of a store, not a backup (no backup/taken_millis in its meta table): "
                + "say when it was taken with --taken-at TIME")
        }
    }

    /// The restored copy in the database's place: the old one kept aside, then a rename, then the directory synced.
    private static func put(_ copy: String, in database: String, _ report: inout RestoreReport) throws {
        let directory = (database as NSString).deletingLastPathComponent
        RestoreFiles.matchOwner(copy, of: directory)
        try RestoreFiles.sync(copy)
        let stamp = UTCTime.text(report.nowMillis).replacingOccurrences(of: " ", with: "T").replacingOccurrences(of: ":", with: "")
        report.keptAside = try RestoreFiles.keepAside(database, stamp: stamp)
        guard rename(copy, database) == 0 else {
            throw ConfigurationError("cannot move the restored store to \(database): \(String(cString: strerror(errno)))"
                + (report.keptAside.map { "; the old one is \($0)" } ?? ""))
        }
        try RestoreFiles.sync(directory, directory: true)
    }
}
