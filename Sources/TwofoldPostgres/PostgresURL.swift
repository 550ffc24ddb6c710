import Foundation

/// The parts of a libpq connection URI (`postgresql://[user@][host][:port][/dbname][?param=value&…]`),
/// percent-decoded. Only what the store uses is accepted: an unknown parameter is an error naming it,
/// and a password (in the user part or as a parameter) is refused: a URL ends up in logs and in `ps`.
struct PostgresURL {
    var user: String?
    var host: String?
    var port: Int?
    var database: String?
    var sslmode: String?
    var sslrootcert: String?
    var connectTimeoutSeconds: Int?

    /// Query parameters the store understands (libpq's names).
    static let parameters: Set<String> = ["host", "port", "dbname", "user", "sslmode", "sslrootcert", "connect_timeout"]

    init(_ url: String) throws {
        var rest = Substring(url)
        guard let scheme = ["postgresql://", "postgres://"].first(where: { rest.hasPrefix($0) }) else {
            throw PostgresConfigurationError("the PostgreSQL URL must start with postgresql:// or postgres://")
        }
        rest = rest.dropFirst(scheme.count)
        var query: Substring?
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring?
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        try parseAuthority(rest)
        if let path { database = try Self.decode(path, "database name") }
        if let query { try parseQuery(query) }
    }

    private mutating func parseAuthority(_ authority: Substring) throws {
        var hostPart = authority
        if let at = authority.lastIndex(of: "@") {
            let userPart = authority[..<at]
            hostPart = authority[authority.index(after: at)...]
            if userPart.contains(":") {
                throw PostgresConfigurationError("""
                    the PostgreSQL URL holds a password: remove it and put it in the file named by \
                    postgresql_password_file (a URL ends up in logs and in ps)
                    """)
            }
            user = try Self.decode(userPart, "user name")
        }
        guard !hostPart.contains(",") else {
            throw PostgresConfigurationError("the PostgreSQL URL names several hosts: give one (a load balancer or DNS name for several)")
        }
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else {
                throw PostgresConfigurationError("the PostgreSQL URL has an IPv6 address without its closing ]")
            }
            host = String(hostPart[hostPart.index(after: hostPart.startIndex)..<close])
            let after = hostPart[hostPart.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw PostgresConfigurationError("the PostgreSQL URL has text after its IPv6 address") }
                portPart = after.dropFirst()
            }
        } else {
            if let colon = hostPart.firstIndex(of: ":") {
                portPart = hostPart[hostPart.index(after: colon)...]
                hostPart = hostPart[..<colon]
            }
            let decoded = try Self.decode(hostPart, "host")
            host = decoded.isEmpty ? nil : decoded
        }
        if let portPart { port = try Self.port(portPart) }
    }

    private mutating func parseQuery(_ query: Substring) throws {
        var seen: Set<String> = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try Self.decode(parts[0], "parameter name")
            if name == "password" {
                throw PostgresConfigurationError("""
                    the PostgreSQL URL holds a password parameter: remove it and put the password in the file \
                    named by postgresql_password_file (a URL ends up in logs and in ps)
                    """)
            }
            guard Self.parameters.contains(name) else {
                // Named only when it looks like a parameter: a password with an unescaped '?' lands here.
                let shown = name.allSatisfy { $0 == "_" || ("a"..."z").contains($0) } ? "'\(name)'" : "(not shown)"
                throw PostgresConfigurationError("""
                    the PostgreSQL URL has an unsupported parameter \(shown) (supported: \
                    \(Self.parameters.sorted().joined(separator: ", ")))
                    """)
            }
            guard seen.insert(name).inserted else { throw PostgresConfigurationError("the PostgreSQL URL gives '\(name)' twice") }
            guard parts.count == 2 else { throw PostgresConfigurationError("the PostgreSQL URL's parameter '\(name)' has no value") }
            try set(name, try Self.decode(parts[1], "value of \(name)"))
        }
    }

    private mutating func set(_ name: String, _ value: String) throws {
        switch name {
        case "host":
            guard !value.isEmpty else { throw PostgresConfigurationError("the PostgreSQL URL's host parameter is empty") }
            host = value
        case "port": port = try Self.port(Substring(value))
        case "dbname": database = value
        case "user": user = value
        case "sslmode": sslmode = value
        case "sslrootcert":
            guard value.hasPrefix("/") else { throw PostgresConfigurationError("sslrootcert must be an absolute path") }
            sslrootcert = value
        case "connect_timeout":
            guard let seconds = Int(value), seconds > 0, seconds <= 3600 else {
                throw PostgresConfigurationError("connect_timeout must be a whole number of seconds from 1 to 3600")
            }
            connectTimeoutSeconds = seconds
        default:
            preconditionFailure("parameter \(name) is listed but not handled")
        }
    }

    private static func port(_ text: Substring) throws -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw PostgresConfigurationError("the PostgreSQL URL's port must be a number from 1 to 65535")
        }
        return port
    }

    private static func decode(_ text: Substring, _ what: String) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw PostgresConfigurationError("the PostgreSQL URL's \(what) has a malformed %-escape")
        }
        return decoded
    }
}
