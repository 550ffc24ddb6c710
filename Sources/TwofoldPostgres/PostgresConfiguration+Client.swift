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

    /// The same settings for one connection of its own (no pool), to learn why connecting fails.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var connection: PostgresConnection.Configuration
        if isUnixSocket {
            connection = .init(unixSocketPath: unixSocketPath, username: user, password: password, database: database)
        } else {
            let mode: PostgresConnection.Configuration.TLS = tls == .disable ? .disable
                : .require(try NIOSSLContext(configuration: tlsConfiguration()))
            connection = .init(host: host, port: port, username: user, password: password, database: database, tls: mode)
        }
        connection.options.connectTimeout = .milliseconds(Int64(connectTimeout.milliseconds))
        return connection
    }

    /// verify-full: certificate chain to the roots (sslrootcert, else the system's) and the host name;
    /// require: encrypted, the certificate not checked (libpq's require without a root file).
    func clientTLS() -> PostgresClient.Configuration.TLS {
        tls == .disable ? .disable : .require(tlsConfiguration())
    }

    private func tlsConfiguration() -> TLSConfiguration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable, .require:
            tlsConfiguration.certificateVerification = .none
        case .verifyFull:
            tlsConfiguration.certificateVerification = .fullVerification
            if let rootCertificatePath { tlsConfiguration.trustRoots = .file(rootCertificatePath) }
        }
        return tlsConfiguration
    }
}
