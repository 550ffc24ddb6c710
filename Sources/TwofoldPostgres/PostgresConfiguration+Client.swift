import NIOSSL
import PostgresNIO

extension PostgresStoreConfiguration {
    /// postgres-nio's configuration: TLS as `tls` says, no session state of any kind (the store works
    /// through PgBouncer in transaction mode), the pool's timeouts from ours.
    func clientConfiguration() -> PostgresClient.Configuration {
        var client: PostgresClient.Configuration
        if isUnixSocket {
            client = .init(unixSocketPath: unixSocketPath, username: user, password: password, database: database)
        } else {
            client = .init(host: host, port: port, username: user, password: password, database: database, tls: clientTLS())
        }
        client.options.connectTimeout = connectTimeout
        client.options.maximumConnections = max(maximumConnections, 1)
        // Idle connections are checked before the pool lends them again, not kept busy.
        client.options.keepAliveBehavior = .init(frequency: .seconds(30), query: "SELECT 1")
        return client
    }

    /// verify-full: certificate chain to the roots (sslrootcert, else the system's) and the host name;
    /// require: encrypted, the certificate not checked (libpq's require without a root file).
    func clientTLS() -> PostgresClient.Configuration.TLS {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable:
            return .disable
        case .require:
            tlsConfiguration.certificateVerification = .none
        case .verifyFull:
            tlsConfiguration.certificateVerification = .fullVerification
            if let rootCertificatePath { tlsConfiguration.trustRoots = .file(rootCertificatePath) }
        }
        return .require(tlsConfiguration)
    }
}
