import Foundation
import TwofoldCore

/// Where and how `PostgresStore` connects, from a libpq connection URI and a password read from a file.
public struct PostgresStoreConfiguration: Sendable {
    /// Only the modes that cannot be downgraded without the store knowing: libpq's `prefer` and `allow`
    /// fall back to plaintext when the server (or a man in the middle) refuses TLS, and `verify-ca`
    /// accepts any host holding a certificate of the CA.
    public enum TLSMode: String, Sendable {
        case disable
        /// Encrypted, the server's certificate not checked.
        case require
        /// Encrypted, the certificate checked against the roots and the host name.
        case verifyFull = "verify-full"
    }

    /// A host name or address, or the directory of a Unix socket when it starts with "/".
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    /// From the password file, never from the URL.
    public var password: String?
    /// Default: `verify-full` for a TCP host other than loopback, `disable` for loopback and Unix sockets.
    public var tls: TLSMode
    /// `sslrootcert`: a PEM file of trusted roots for `verify-full` (else the system's roots).
    public var rootCertificatePath: String?
    /// How long a new connection may take (TCP and TLS); default 2 s.
    public var connectTimeout: Duration
    /// How long one statement may run; default 3 s, well under the PAM module's 10 s.
    public var statementTimeout: Duration
    /// Connections the store's pool opens at most; default 4.
    public var maximumConnections: Int
    /// TOTP steps beyond the current one and HOTP counters that a detected failover burns (see below).
    /// Default 1: the verify window's look-ahead (`WindowPolicy.window`).
    public var failoverTOTPSteps: Int64
    /// HOTP counters a detected failover advances every HOTP factor by. Default: the counters the
    /// HOTP window spans, TwofoldCore's look-ahead (`WindowPolicy.hotpLookAhead`) + 1: the stored
    /// counter is the next acceptable one, and a code as far as counter + look-ahead may have been
    /// accepted, moving it to counter + look-ahead + 1.
    public var failoverHOTPLookAhead: Int64

    /// libpq's default Unix socket directory on Debian, for a URL without a host.
    static let defaultSocketDirectory = "/var/run/postgresql"

    /// Parses libpq's URI form, `postgresql://user@host:port/dbname?sslmode=…&sslrootcert=…&connect_timeout=…`
    /// (or `postgres://`). `password` comes from the password file; a password inside the URL is refused.
    public init(url: String, password: String?) throws {
        let parsed = try PostgresURL(url)
        host = parsed.host ?? Self.defaultSocketDirectory
        port = parsed.port ?? 5432
        guard let user = parsed.user, !user.isEmpty else {
            throw PostgresConfigurationError("the PostgreSQL URL names no user (postgresql://USER@host/dbname)")
        }
        self.user = user
        // libpq's default: a database named like the user.
        database = parsed.database.flatMap { $0.isEmpty ? nil : $0 } ?? user
        self.password = password
        tls = try parsed.sslmode.map(Self.tlsMode) ?? Self.defaultTLS(host: host)
        rootCertificatePath = parsed.sslrootcert
        connectTimeout = parsed.connectTimeoutSeconds.map { .seconds($0) } ?? .seconds(2)
        statementTimeout = .seconds(3)
        maximumConnections = 4
        failoverTOTPSteps = Int64(WindowPolicy().window)
        failoverHOTPLookAhead = Int64(WindowPolicy().hotpLookAhead) + 1
        if tls == .disable, rootCertificatePath != nil {
            throw PostgresConfigurationError("sslrootcert is given but sslmode is disable: say sslmode=verify-full")
        }
    }

    /// True when `host` is a Unix socket directory.
    var isUnixSocket: Bool { host.hasPrefix("/") }

    /// The Unix socket's path: libpq's name for it in the directory.
    var unixSocketPath: String { (host.hasSuffix("/") ? String(host.dropLast()) : host) + "/.s.PGSQL.\(port)" }

    /// Without sslmode: TLS checked in full across a network, where a man in the middle could sit
    /// between the daemon and the database; none on loopback and Unix sockets, whose traffic never
    /// leaves the host (whoever could read it there is root already) and whose servers rarely have a
    /// certificate for "localhost".
    static func defaultTLS(host: String) -> TLSMode {
        host.hasPrefix("/") || ["localhost", "127.0.0.1", "::1"].contains(host.lowercased()) ? .disable : .verifyFull
    }

    private static func tlsMode(_ text: String) throws -> TLSMode {
        if let mode = TLSMode(rawValue: text) { return mode }
        throw PostgresConfigurationError("""
            sslmode=\(text) is not supported: use disable, require or verify-full (prefer and allow fall back \
            to plaintext without a word when TLS fails, verify-ca accepts any host with a certificate of the CA)
            """)
    }
}

/// A connection URL or setting the store cannot use. The message never holds a password.
public struct PostgresConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
