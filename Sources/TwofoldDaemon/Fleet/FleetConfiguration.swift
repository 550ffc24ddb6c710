/// What this daemon is in a fleet: a single host (the default: its own store, its own socket), a
/// server of the verification tier (a store, the sealing key, and a TLS listener for relays), or a
/// relay (no store, no key: it forwards its socket's dialogs and requests to the tier).
public enum DaemonRole: String, Sendable, Equatable {
    case single, server, relay
}

/// A server of the tier as a relay names it, or the address a server listens on.
public struct TierAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `name:port` or `[v6]:port`.
    public init?(parsing text: Substring) {
        let text = text.trimmingWhitespace()
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, host.utf8.count <= 253, !host.contains(where: { $0.isWhitespace || $0 == "," }) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The fleet keys of twofoldd.conf (`role` and what each role needs). Read once at start.
public struct FleetConfiguration: Sendable, Equatable {
    public var role: DaemonRole = .single
    /// server: where relays connect (`listen = 0.0.0.0:7443`).
    public var listen: TierAddress?
    /// relay: the tier's servers, tried in turn (`servers = tier-1:7443, tier-2:7443`).
    public var servers: [TierAddress] = []
    /// This daemon's certificate chain and key (PEM): a server's serves, a relay's identifies its host.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// server: the CA that signs host certificates (and only those).
    public var tlsClientCA: String?
    /// relay: the CA that signs server certificates (and only those).
    public var tlsServerCA: String?
    /// relay: how long reaching one server may take before the next is tried.
    public var tierConnectTimeoutMillis = 2_000
    /// server: connections one host may hold at once; further ones get a verdict that fails closed.
    public var maxConnectionsPerHost = 64
    /// server: how often the host registry is read again, so a host revoked on another server
    /// loses its open connections here too.
    public var registryRefreshSeconds = 5

    public init() {}

    /// Sets a fleet key; false when `key` is not one.
    mutating func set(key: String, value: String, at: String, path: () throws -> String, int: (ClosedRange<Int>) throws -> Int) throws -> Bool {
        switch key {
        case "role":
            guard let role = DaemonRole(rawValue: value.lowercased()) else { throw ConfigurationError("\(at): role must be single, server or relay") }
            self.role = role
        // An empty value is the default (unset), as the shipped file shows it.
        case "listen" where value.isEmpty: listen = nil
        case "listen":
            guard let address = TierAddress(parsing: Substring(value)) else { throw ConfigurationError("\(at): listen must be ADDRESS:PORT, e.g. 0.0.0.0:7443") }
            listen = address
        case "servers" where value.isEmpty: servers = []
        case "servers":
            let parts = value.split(separator: ",")
            let addresses = parts.compactMap { TierAddress(parsing: $0) }
            guard !parts.isEmpty, addresses.count == parts.count, addresses.allSatisfy({ $0.port > 0 }) else {
                throw ConfigurationError("\(at): servers must be a comma-separated list of NAME:PORT, e.g. tier-1.example.com:7443, tier-2.example.com:7443")
            }
            servers = addresses
        case "tls_certificate": tlsCertificate = value.isEmpty ? nil : try path()
        case "tls_key": tlsKey = value.isEmpty ? nil : try path()
        case "tls_client_ca": tlsClientCA = value.isEmpty ? nil : try path()
        case "tls_server_ca": tlsServerCA = value.isEmpty ? nil : try path()
        case "tier_connect_timeout_ms": tierConnectTimeoutMillis = try int(100...8_000)
        case "max_connections_per_host": maxConnectionsPerHost = try int(1...65_536)
        case "registry_refresh_seconds": registryRefreshSeconds = try int(1...3_600)
        default:
            return false
        }
        return true
    }

    /// The keys as a whole: each role has what it needs and nothing that belongs to another.
    func check(source: String, store: StoreKind, storeKeysSet: Bool) throws {
        func need(_ value: Any?, _ key: String) throws {
            if value == nil { throw ConfigurationError("\(source): role = \(role.rawValue) needs \(key)") }
        }
        func forbid(_ value: Any?, _ key: String, _ why: String) throws {
            if value != nil { throw ConfigurationError("\(source): \(key) does not belong to role = \(role.rawValue): \(why)") }
        }
        switch role {
        case .single:
            if listen != nil || !servers.isEmpty || tlsCertificate != nil || tlsKey != nil || tlsClientCA != nil || tlsServerCA != nil {
                throw ConfigurationError("\(source): listen, servers and the tls_* keys need role = server or role = relay")
            }
        case .server:
            try need(listen, "listen")
            try need(tlsCertificate, "tls_certificate")
            try need(tlsKey, "tls_key")
            try need(tlsClientCA, "tls_client_ca (the CA of host certificates)")
            try forbid(servers.isEmpty ? nil : servers, "servers", "a server is part of the tier")
            try forbid(tlsServerCA, "tls_server_ca", "a server trusts host certificates, through tls_client_ca")
        case .relay:
            if servers.isEmpty { throw ConfigurationError("\(source): role = relay needs servers") }
            try need(tlsCertificate, "tls_certificate")
            try need(tlsKey, "tls_key")
            try need(tlsServerCA, "tls_server_ca (the CA of server certificates)")
            try forbid(listen, "listen", "relays take no connections from other hosts")
            try forbid(tlsClientCA, "tls_client_ca", "a relay trusts server certificates, through tls_server_ca")
            if store != .sqlite || storeKeysSet {
                throw ConfigurationError("\(source): a relay holds no store: remove store, database and the postgresql_* keys")
            }
        }
    }
}
