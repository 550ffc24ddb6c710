import Foundation
import GRDB
import TwofoldStore

/// The host registry (schema v5) and the host of each user's last successful login.
extension SQLiteStore {
    public func addHostCertificate(_ certificate: HostCertificate) async throws {
        try await guarded {
            try await pool.write { db in
                if let stored = try Self.hostCertificate(fingerprint: certificate.fingerprint, db) {
                    if let conflict = certificate.conflict(with: stored) { throw conflict }
                    return
                }
                try db.execute(sql: "INSERT INTO host_certificates (fingerprint, host, not_after, added_at) VALUES (?, ?, ?, ?)",
                               arguments: [certificate.fingerprint, certificate.host, certificate.notAfterMillis, certificate.addedMillis])
            }
        }
    }

    public func revokeHost(_ name: String, atMillis: Int64) async throws -> Int {
        try await guarded {
            try await pool.write { db in
                try db.execute(sql: "UPDATE host_certificates SET revoked_at = ? WHERE host = ? AND revoked_at IS NULL", arguments: [atMillis, name])
                return db.changesCount
            }
        }
    }

    public func hostCertificates(host: String?) async throws -> [HostCertificate] {
        try await guarded {
            try await pool.read { db in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT \(Self.hostColumns) FROM host_certificates WHERE ?1 IS NULL OR host = ?1 ORDER BY host, added_at, fingerprint
                    """, arguments: [host])
                return rows.map(Self.hostCertificate)
            }
        }
    }

    public func hostCertificate(fingerprint: String) async throws -> HostCertificate? {
        try await guarded {
            try await pool.read { db in try Self.hostCertificate(fingerprint: fingerprint, db) }
        }
    }

    public func lastSuccessHosts(users: [String]) async throws -> [String: String] {
        guard !users.isEmpty else { return [:] }
        let names = String(decoding: try JSONEncoder().encode(users), as: UTF8.self)
        return try await guarded {
            try await pool.read { db in
                let rows = try Row.fetchAll(db, sql: Self.lastSuccessHostsSQL, arguments: [names])
                var hosts: [String: String] = [:]
                for row in rows {
                    if let host = row[1] as String? { hosts[row[0]] = host }
                }
                return hosts
            }
        }
    }

    /// One indexed lookup per user named in the JSON array (the newest entry of
    /// audit_host_logins), in one statement.
    static let lastSuccessHostsSQL = """
        SELECT u.value, (SELECT host FROM audit WHERE user = u.value AND \(Schema.hostLoginCondition) ORDER BY id DESC LIMIT 1)
        FROM json_each(?) AS u
        """

    private static let hostColumns = "host, fingerprint, not_after, added_at, revoked_at"

    private static func hostCertificate(fingerprint: String, _ db: Database) throws -> HostCertificate? {
        try Row.fetchOne(db, sql: "SELECT \(hostColumns) FROM host_certificates WHERE fingerprint = ?", arguments: [fingerprint])
            .map(hostCertificate)
    }

    private static func hostCertificate(_ row: Row) -> HostCertificate {
        HostCertificate(host: row[0], fingerprint: row[1], notAfterMillis: row[2], addedMillis: row[3], revokedMillis: row[4])
    }
}
