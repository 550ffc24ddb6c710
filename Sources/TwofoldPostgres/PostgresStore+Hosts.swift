import PostgresNIO
import TwofoldStore

/// The host registry (schema v5) and the host of each user's last successful login, with the
/// SQLite backend's semantics.
extension PostgresStore {
    public func addHostCertificate(_ certificate: HostCertificate) async throws {
        try await write(statements: 2) { connection in
            // Another daemon adding the same certificate at once: one inserts, the other waits for
            // its commit and then reads its row (each statement sees what committed before it).
            let inserted = try await connection.run("""
                INSERT INTO host_certificates (fingerprint, host, not_after, added_at)
                VALUES (\(certificate.fingerprint), \(certificate.host), \(certificate.notAfterMillis), \(certificate.addedMillis))
                ON CONFLICT (fingerprint) DO NOTHING RETURNING 1
                """)
            guard inserted.first == nil else { return }
            guard let stored = try await Self.hostCertificates(fingerprint: certificate.fingerprint, connection).first else {
                throw StoreError.database("host certificate \(certificate.fingerprint) was neither added nor found")
            }
            if let conflict = certificate.conflict(with: stored) { throw conflict }
        }
    }

    public func revokeHost(_ name: String, atMillis: Int64) async throws -> Int {
        try await write { connection in
            try await connection.run("UPDATE host_certificates SET revoked_at = \(atMillis) WHERE host = \(name) AND revoked_at IS NULL")
                .metadata.rows ?? 0
        }
    }

    public func hostCertificates(host: String?) async throws -> [HostCertificate] {
        try await read { connection in
            try Self.decodeHosts(try await connection.run("""
                SELECT \(unescaped: Self.hostColumns) FROM host_certificates
                WHERE \(host)::text IS NULL OR host = \(host) ORDER BY host, added_at, fingerprint
                """))
        }
    }

    public func hostCertificate(fingerprint: String) async throws -> HostCertificate? {
        try await read { connection in try await Self.hostCertificates(fingerprint: fingerprint, connection).first }
    }

    public func lastSuccessHosts(users: [String]) async throws -> [String: String] {
        guard !users.isEmpty else { try checkOpen(); return [:] }
        let rows = try await read { connection in
            try await connection.run(Self.lastSuccessHostsQuery(users)).map { try $0.decode((String, String).self) }
        }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }

    /// One indexed lookup per user (the newest entry of audit_host_logins), in one statement.
    static func lastSuccessHostsQuery(_ users: [String]) -> PostgresQuery {
        """
        SELECT u.name, l.host FROM unnest(\(users)::text[]) AS u(name)
        CROSS JOIN LATERAL (SELECT host FROM audit WHERE user_name = u.name AND \(unescaped: PostgresSchema.hostLoginCondition)
                            ORDER BY id DESC LIMIT 1) AS l
        """
    }

    private static let hostColumns = "host, fingerprint, not_after, added_at, revoked_at"

    private static func hostCertificates(fingerprint: String, _ connection: PostgresConnection) async throws -> [HostCertificate] {
        try decodeHosts(try await connection.run("""
            SELECT \(unescaped: hostColumns) FROM host_certificates WHERE fingerprint = \(fingerprint)
            """))
    }

    private static func decodeHosts(_ rows: PostgresQueryResult) throws -> [HostCertificate] {
        try rows.map { row in
            let (host, fingerprint, notAfter, added, revoked) = try row.decode((String, String, Int64?, Int64, Int64?).self)
            return HostCertificate(host: host, fingerprint: fingerprint, notAfterMillis: notAfter, addedMillis: added, revokedMillis: revoked)
        }
    }
}
