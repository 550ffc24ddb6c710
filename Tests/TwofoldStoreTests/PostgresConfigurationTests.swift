import Testing
@testable import TwofoldPostgres
@testable import TwofoldSQLite

/// The libpq URI parser of `PostgresStoreConfiguration`: a table of URLs it takes and of URLs it
/// refuses, with what it says.
@Suite struct PostgresConfigurationTests {
    struct Good: Sendable, CustomTestStringConvertible {
        let url: String
        let host: String
        let port: Int
        let user: String
        let database: String
        let tls: PostgresStoreConfiguration.TLSMode
        var root: String? = nil
        var connectSeconds: Int64 = 2
        var testDescription: String { url }
    }

    static let good: [Good] = [
        Good(url: "postgresql://twofold@db.example.org/twofold", host: "db.example.org", port: 5432, user: "twofold", database: "twofold",
             tls: .verifyFull),
        Good(url: "postgres://twofold@db.example.org:6432/auth?sslmode=require", host: "db.example.org", port: 6432, user: "twofold",
             database: "auth", tls: .require),
        Good(url: "postgresql://twofold@127.0.0.1:5433/twofold", host: "127.0.0.1", port: 5433, user: "twofold", database: "twofold", tls: .disable),
        Good(url: "postgresql://twofold@localhost/twofold", host: "localhost", port: 5432, user: "twofold", database: "twofold", tls: .disable),
        Good(url: "postgresql://twofold@[::1]:5433/twofold", host: "::1", port: 5433, user: "twofold", database: "twofold", tls: .disable),
        Good(url: "postgresql://twofold@[2001:db8::7]/twofold", host: "2001:db8::7", port: 5432, user: "twofold", database: "twofold",
             tls: .verifyFull),
        Good(url: "postgresql://twofold@db.example.org/twofold?sslmode=verify-full&sslrootcert=/etc/twofold/ca.pem&connect_timeout=5",
             host: "db.example.org", port: 5432, user: "twofold", database: "twofold", tls: .verifyFull, root: "/etc/twofold/ca.pem",
             connectSeconds: 5),
        Good(url: "postgresql://db.example.org/twofold?sslmode=disable&user=svc", host: "db.example.org", port: 5432, user: "svc",
             database: "twofold", tls: .disable),
        // Percent-decoding in every part.
        Good(url: "postgresql://two%40fold@db.example.org/two%2Ffold", host: "db.example.org", port: 5432, user: "two@fold",
             database: "two/fold", tls: .verifyFull),
        // Unix sockets: no host (libpq's default directory) or a directory as the host parameter.
        Good(url: "postgresql://twofold@/twofold", host: "/var/run/postgresql", port: 5432, user: "twofold", database: "twofold", tls: .disable),
        Good(url: "postgresql://twofold@/twofold?host=%2Frun%2Fpg&port=6000", host: "/run/pg", port: 6000, user: "twofold", database: "twofold",
             tls: .disable),
        Good(url: "postgresql://twofold@/twofold?host=/tmp", host: "/tmp", port: 5432, user: "twofold", database: "twofold", tls: .disable),
        // No database: libpq's default, the user's name.
        Good(url: "postgresql://twofold@db.example.org", host: "db.example.org", port: 5432, user: "twofold", database: "twofold", tls: .verifyFull),
    ]

    @Test(arguments: good) func takes(_ good: Good) throws {
        let configuration = try PostgresStoreConfiguration(url: good.url, password: "from-the-file")
        #expect(configuration.host == good.host)
        #expect(configuration.port == good.port)
        #expect(configuration.user == good.user)
        #expect(configuration.database == good.database)
        #expect(configuration.tls == good.tls)
        #expect(configuration.rootCertificatePath == good.root)
        #expect(configuration.password == "from-the-file")
        #expect(configuration.connectTimeout == .seconds(good.connectSeconds))
        #expect(configuration.statementTimeout == .seconds(3))
        #expect(configuration.maximumConnections == 4)
        #expect(configuration.failoverTOTPSteps == 1)
        #expect(configuration.failoverHOTPLookAhead == 11)
    }

    /// A URL and a word its error must contain.
    static let bad: [(String, String)] = [
        ("mysql://twofold@db/twofold", "postgresql://"),
        ("postgresql://twofold:s3cret@db.example.org/twofold", "postgresql_password_file"),
        ("postgresql://twofold:@db.example.org/twofold", "postgresql_password_file"),
        ("postgresql://twofold@db.example.org/twofold?password=s3cret", "postgresql_password_file"),
        ("postgresql://twofold@db.example.org/twofold?sslmode=prefer", "prefer"),
        ("postgresql://twofold@db.example.org/twofold?sslmode=allow", "disable, require or verify-full"),
        ("postgresql://twofold@db.example.org/twofold?sslmode=verify-ca", "verify-ca"),
        ("postgresql://twofold@db.example.org/twofold?application_name=x", "'application_name'"),
        ("postgresql://twofold@db.example.org/twofold?sslmode=require&sslmode=disable", "twice"),
        ("postgresql://twofold@db.example.org:0/twofold", "port"),
        ("postgresql://twofold@db.example.org:99999/twofold", "port"),
        ("postgresql://twofold@db.example.org:x/twofold", "port"),
        ("postgresql://twofold@a.example.org,b.example.org/twofold", "several hosts"),
        ("postgresql://twofold@[::1/twofold", "]"),
        ("postgresql://db.example.org/twofold", "no user"),
        ("postgresql://twofold@db.example.org/twofold?connect_timeout=0", "connect_timeout"),
        ("postgresql://twofold@db.example.org/twofold?sslrootcert=ca.pem", "absolute"),
        ("postgresql://twofold@db.example.org/twofold?sslmode=disable&sslrootcert=/ca.pem", "sslrootcert"),
        ("postgresql://twofold@db.example.org/two%zzfold", "%-escape"),
    ]

    @Test(arguments: bad) func refuses(_ url: String, _ word: String) {
        let error = #expect(throws: PostgresConfigurationError.self) { try PostgresStoreConfiguration(url: url, password: nil) }
        let message = error?.description ?? ""
        #expect(message.contains(word), "\(message)")
        #expect(!message.contains("s3cret"))
    }

    /// A password with an unescaped '?' lands in the query: the error does not show it.
    @Test func aMangledPasswordIsNotEchoed() {
        let error = #expect(throws: PostgresConfigurationError.self) {
            try PostgresStoreConfiguration(url: "postgresql://twofold:pa?ss=w@rd@db.example.org/twofold", password: nil)
        }
        #expect(error.map { !$0.description.contains("w@rd") } == true, "\(String(describing: error))")
    }

    /// A version names the same schema on both backends.
    @Test func schemaVersionsAreTheSQLiteBackendsIdentifiers() {
        #expect(PostgresSchema.supported == Schema.supported)
        #expect(PostgresSchema.known.allSatisfy(Schema.migrationIdentifiers.contains))
    }
}
