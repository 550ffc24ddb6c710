import Foundation
import TwofoldProtocol

/// The Store section's backup check: a single host's store is every user's second factor, so
/// doctor says when it was last backed up (the newest `backup` success in the audit) and warns when
/// never, or not for a week. A PostgreSQL store's backups are the database's, which twofoldd cannot
/// see: doctor names them instead.
struct BackupCheck {
    let session: DaemonSession
    /// Older than this, the last backup is a warning.
    static let maximumAgeDays = 7

    func findings(_ info: ServerInfo, nowMillis: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> [Finding] {
        if StoreCheck.isPostgreSQL(info.database) {
            return [.ok("backup.postgresql", subject: "store",
                        "the store is PostgreSQL: its backups are the database's (pg_dump of it, or base backups with a WAL archive), then `twofoldd restore --postgresql` (README, \"Backup and restore\")")]
        }
        let last: AuditEntry?
        do throws(CLIFailure) {
            let response = try session.send(.audit(user: nil, sinceMillis: nil, outcome: "success", limit: 1, action: "backup"))
            guard case .audit(let entries) = response else { throw unexpected(response) }
            last = entries.last { $0.action == "backup" }   // a daemon from before `action` answers every action
        } catch {
            return [.warning("backup.unknown", subject: info.database, "twofoldd could not say when the store was last backed up: \(error.message)",
                             fix: "`twofoldctl audit --action backup`")]
        }
        let fix = "`twofoldctl backup --output /root/twofold-$(date +%F).sqlite` (daily, from cron or a timer), and keep a copy of the key file apart from the backups"
        guard let last else {
            return [.warning("backup.none", subject: info.database,
                             "no backup of this host's store on record: losing the database locks every enrolled user out (or makes each enroll again)",
                             fix: fix)]
        }
        let days = Int((nowMillis - last.timeMillis) / 86_400_000)
        let when = "the last backup (`twofoldctl backup`) was taken \(days == 0 ? "today" : "\(days) day\(days == 1 ? "" : "s") ago")"
        guard days < Self.maximumAgeDays else {
            return [.warning("backup.age", subject: info.database, "\(when): a restore would bring back a store that old", fix: fix)]
        }
        return [.ok("backup.age", subject: info.database, when)]
    }
}
