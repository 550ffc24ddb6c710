import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// What a backup file says before anything is restored from it (`SQLiteStore.inspectBackup`).
public struct BackupInspection: Sendable {
    /// The manifest rows (`BackupManifest`); nil for a plain copy of a store.
    public var manifest: BackupManifest?
    /// The newest schema migration it records, and whether opening it will migrate it.
    public var schema: String
    public var needsMigration: Bool
}

/// Restoring a single host's store: the checks of a backup file (read only) and the rules that
/// make the restored copy safe (`RestoreRules`), in one write transaction.
extension SQLiteStore {
    /// Checks a backup without writing to it: it opens as SQLite, `PRAGMA integrity_check` is ok,
    /// it is a Twofold store of a schema this code knows (not newer), and `keyring` holds a key its
    /// key checks know and that opens its recovery pepper. Each failure is a `StoreError` that says
    /// what is wrong with the file.
    public static func inspectBackup(path: String, keyring: Keyring) throws -> BackupInspection {
        var config = Configuration()
        config.readonly = true
        config.label = "twofold.restore.check"
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            return try queue.read { db in try inspect(db, keyring: keyring) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT {
            throw StoreError.database("\(path) is not an intact SQLite database (\(error.message ?? "unreadable")): damaged or truncated")
        } catch {
            throw storeError(error)
        }
    }

    private static func inspect(_ db: Database, keyring: Keyring) throws -> BackupInspection {
        let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check(20)")
        guard problems == ["ok"] else {
            throw StoreError.database("the integrity check failed (damaged or truncated): \(problems.prefix(3).joined(separator: "; "))")
        }
        guard try db.tableExists("grdb_migrations"), try db.tableExists("meta") else {
            throw StoreError.database("this SQLite file is not a Twofold store (no schema or key check)")
        }
        try Schema.checkNotNewer(db)
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
        guard let newest = Schema.migrationIdentifiers.last(where: applied.contains) else {
            throw StoreError.database("this SQLite file is not a Twofold store (no schema)")
        }
        try Schema.checkKeys(db, keyring: keyring, required: true)
        if applied.contains("v4") { _ = try Schema.pepper(db, sealer: Sealer(keyring: keyring)) }
        var rows: [String: [UInt8]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key LIKE 'backup/%'") {
            let key: String = row["key"], value: Data = row["value"]
            rows[key] = Array(value)
        }
        return BackupInspection(manifest: try BackupManifest(rows: rows), schema: newest, needsMigration: newest != Schema.supported)
    }

    /// Folds a closed store's WAL into its file and leaves it in rollback-journal mode: one
    /// self-contained file that can be renamed into place (the daemon sets WAL again when it opens it).
    public static func makeSelfContained(path: String) throws {
        do {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
            }
        } catch {
            throw storeError(error)
        }
    }

    public func secureRestoredStore(_ rules: RestoreRules) async throws -> RestoreReplayResult {
        try await guarded {
            try await pool.write { db in
                var result = RestoreReplayResult()
                result.users = try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0
                result.usersWithFactors = try Int.fetchOne(db, sql: "SELECT count(DISTINCT user) FROM factors") ?? 0
                try Self.raiseFactors(rules, into: &result, db)
                result.recoverySets = try Int.fetchOne(db, sql: "SELECT count(DISTINCT user) FROM recovery_codes WHERE used_at IS NULL") ?? 0
                if rules.invalidateRecoveryCodes {
                    try db.execute(sql: "UPDATE recovery_codes SET used_at = ? WHERE used_at IS NULL", arguments: [rules.nowMillis])
                    result.recoverySetsInvalidated = result.recoverySets
                }
                return result
            }
        }
    }

    /// Every factor's replay state through `RestoredFactor.restored` (the arithmetic is TwofoldCore's).
    private static func raiseFactors(_ rules: RestoreRules, into result: inout RestoreReplayResult, _ db: Database) throws {
        let rows = try Row.fetchCursor(db, sql: "SELECT user, name, kind, period, last_step, counter, drift, last_offset FROM factors")
        var changed: [RestoredFactor] = []
        while let row = try rows.next() {
            result.factors += 1
            let kind: String = row["kind"]
            let factor = RestoredFactor(user: row["user"], name: row["name"], method: OTPMethod(rawValue: kind) ?? .totp, period: row["period"],
                                        verify: VerifyState(lastStep: row["last_step"], counter: UInt64(bitPattern: row["counter"] as Int64),
                                                            drift: row["drift"], lastOffset: row["last_offset"]))
            guard let next = factor.restored(rules) else { continue }
            changed.append(RestoredFactor(user: factor.user, name: factor.name, method: factor.method, period: factor.period, verify: next))
            if factor.method == .totp { result.watermarksRaised += 1 } else { result.countersAdvanced += 1 }
        }
        let update = try db.cachedStatement(sql: "UPDATE factors SET last_step = ?, counter = ? WHERE user = ? AND name = ?")
        for factor in changed {
            try update.execute(arguments: [factor.verify.lastStep, Int64(bitPattern: factor.verify.counter), factor.user, factor.name])
        }
    }
}
