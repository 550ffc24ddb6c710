import GRDB

/// Schema v5: fleet mode. The host registry (one row per certificate, keyed by its fingerprint),
/// the host an audit record happened on, and an index of the successful logins that name a host,
/// by user, for the host of each user's last one (`lastSuccessHosts`). The index is partial: a
/// record without a host (every login of a single daemon) writes no more pages than before.
extension Schema {
    /// The records `audit_host_logins` indexes. A query uses the index only when its WHERE says
    /// this too, so the query is built from the same text; a released migration never changes it.
    static let hostLoginCondition = "action = 'verify' AND outcome = 'success' AND host IS NOT NULL"

    static let v5 = """
        CREATE TABLE host_certificates (
            fingerprint TEXT PRIMARY KEY NOT NULL,
            host TEXT NOT NULL,
            not_after INTEGER,
            added_at INTEGER NOT NULL,
            revoked_at INTEGER
        ) WITHOUT ROWID;
        CREATE INDEX host_certificates_by_host ON host_certificates(host, added_at);
        ALTER TABLE audit ADD COLUMN host TEXT;
        CREATE INDEX audit_host_logins ON audit(user, id) WHERE \(hostLoginCondition);
        """
}
