import Foundation
import TwofoldProtocol

/// The Store section: where twofoldd keeps its state, and for PostgreSQL how the connection is
/// protected. The daemon answered, so it did reach its database at start; what is left to judge is
/// whether that connection can be read or redirected on the network (sslmode).
struct StoreCheck {
    static func isPostgreSQL(_ database: String) -> Bool {
        database.hasPrefix("postgresql://") || database.hasPrefix("postgres://")
    }

    func findings(_ info: ServerInfo) -> [Finding] {
        guard Self.isPostgreSQL(info.database), let url = URLComponents(string: info.database) else {
            return [.ok("store.sqlite", subject: info.database, "SQLite on this host")]
        }
        let host = url.host ?? ""
        let mode = url.queryItems?.first { $0.name == "sslmode" }?.value
        let local = host.isEmpty || host.hasPrefix("/") || ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host)
        let subject = "\(host.isEmpty ? "(socket)" : host):\(url.port ?? 5432)\(url.path)"
        var findings: [Finding] = [.ok("store.postgresql", subject: subject,
            "PostgreSQL shared by every twofoldd on it (same sealing key on each); sslmode \(mode ?? (local ? "disable (loopback default)" : "verify-full (default)"))")]
        switch (mode, local) {
        case ("disable"?, false):
            findings.append(.error("store.tls", subject: subject,
                                   "sslmode=disable to a remote host: the password exchange aside, every verdict's state and every sealed secret cross the network in clear, and anyone on the path can answer in the database's place",
                                   fix: "serve TLS on the database and set sslmode=verify-full&sslrootcert=/etc/twofold/db-ca.pem in postgresql_url"))
        case ("require"?, false):
            findings.append(.warning("store.tls", subject: subject,
                                     "sslmode=require encrypts but does not check the server's certificate: whoever can redirect the connection can pose as the database",
                                     fix: "sslmode=verify-full with sslrootcert= the CA that signed the database's certificate"))
        default:
            break
        }
        return findings
    }
}
