import Foundation
import GRDB
import TwofoldCore
import TwofoldStore

/// Schema v3: factors. A user's OTP enrollments move from columns of `users` to rows of `factors`
/// keyed by (user, name), each with its own replay step or counter and drift; throttling stays on
/// `users` (per user, whatever the factors); recovery codes and audit records are untouched.
extension Schema {
    static let v3Tables = """
        CREATE TABLE users_v3 (
            name TEXT PRIMARY KEY NOT NULL,
            pending_name TEXT,
            pending_secret BLOB,
            pending_method TEXT,
            pending_algorithm TEXT,
            pending_digits INTEGER,
            pending_period INTEGER,
            failures INTEGER NOT NULL DEFAULT 0,
            not_before INTEGER,
            locked_until INTEGER,
            requirement TEXT NOT NULL DEFAULT 'policy' CHECK (requirement IN ('policy', 'required', 'exempt')),
            -- The last recovery-code login (and, migrated, the last of any); factors keep their own.
            last_success INTEGER,
            first_required INTEGER,
            -- The admin's per-user factor kinds (comma-separated: the chain's first level); NULL: policy.
            factor_kinds TEXT
        ) WITHOUT ROWID;
        INSERT INTO users_v3 (name, failures, not_before, locked_until, requirement, last_success, first_required)
            SELECT name, failures, not_before, locked_until, requirement, last_success, first_required FROM users;

        -- One row per active OTP factor; secret sealed with purpose "factor", AAD naming user and factor.
        CREATE TABLE factors (
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('totp', 'hotp')),
            algorithm TEXT NOT NULL,
            digits INTEGER NOT NULL,
            period INTEGER NOT NULL,
            secret BLOB NOT NULL,
            last_step INTEGER,
            counter INTEGER NOT NULL DEFAULT 0,
            drift INTEGER NOT NULL DEFAULT 0,
            last_offset INTEGER,
            added_at INTEGER NOT NULL,
            last_used INTEGER,
            PRIMARY KEY (user, name)
        ) WITHOUT ROWID;
        """

    /// Moves every enrollment to a factor named "app" (a pending one too), re-sealing its secret for
    /// the new AAD, then swaps in the slimmer `users`. Runs in the migration's transaction with
    /// foreign keys off (GRDB), so dropping the old table cascades nothing. A secret that does not
    /// open (tampered before) is carried over as it was: it stays unreadable, as it was.
    static func migrateToV3(_ db: Database, sealer: Sealer) throws {
        try db.execute(sql: v3Tables)
        let name = FactorName.first
        let rows = try Row.fetchAll(db, sql: """
            SELECT name, status, method, algorithm, digits, period, secret, last_step, counter, drift, last_offset,
                enrolled_at, last_success, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period
            FROM users
            """)
        let insertFactor = try db.makeStatement(sql: """
            INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, last_step, counter, drift, last_offset,
                added_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let updatePending = try db.makeStatement(sql: """
            UPDATE users_v3 SET pending_name = ?, pending_secret = ?, pending_method = ?, pending_algorithm = ?,
                pending_digits = ?, pending_period = ? WHERE name = ?
            """)
        for row in rows {
            let user: String = row["name"]
            if row["status"] as String? == "active", let blob = row["secret"] as Data? {
                let sealed = try reseal(blob, from: .secret, to: .factor, user: user, factor: name, sealer: sealer)
                try insertFactor.execute(arguments: [user, name, row["method"], row["algorithm"], row["digits"], row["period"], sealed,
                                                     row["last_step"], row["counter"], row["drift"], row["last_offset"],
                                                     row["enrolled_at"] as Int64? ?? 0, row["last_success"]])
            }
            if let blob = row["pending_secret"] as Data? {
                let sealed = try reseal(blob, from: .pending, to: .pendingFactor, user: user, factor: name, sealer: sealer)
                try updatePending.execute(arguments: [name, sealed, row["pending_method"], row["pending_algorithm"],
                                                      row["pending_digits"], row["pending_period"], user])
            }
        }
        try db.execute(sql: "DROP TABLE users; ALTER TABLE users_v3 RENAME TO users")
    }

    private static func reseal(_ blob: Data, from old: SealPurpose, to new: SealPurpose, user: String, factor: String,
                               sealer: Sealer) throws -> Data {
        guard let secret = try? sealer.open(Array(blob), old, user: user) else { return blob }
        return Data(try sealer.seal(secret, new, user: user, factor: factor))
    }
}
