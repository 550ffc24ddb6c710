#if canImport(Glibc)
import Glibc
#endif
import NIOSSL

/// What `twofoldd --check-config` says of the fleet keys: the role, and for a server or a relay
/// that its certificate, key and CA load and what they are (a start would refuse what fails here).
public enum FleetCheck {
    public static func report(_ fleet: FleetConfiguration, environment: [String: String]) throws -> [String] {
        switch fleet.role {
        case .single:
            return ["role: single host"]
        case .server:
            _ = try TierTLS.serverContext(fleet, environment: environment)
            return ["role: server of the tier, listening for relays on \(fleet.listen.map(\.description) ?? "-")",
                    try describe(fleet.tlsCertificate, "tls_certificate"), try describe(fleet.tlsClientCA, "tls_client_ca")]
        case .relay:
            _ = try TierTLS.clientContext(fleet, environment: environment)
            return ["role: relay to \(fleet.servers.map(\.description).joined(separator: ", ")) (no store, no key)",
                    try describe(fleet.tlsCertificate, "tls_certificate"), try describe(fleet.tlsServerCA, "tls_server_ca")]
        }
    }

    /// The first certificate of a file: its fingerprint (what `twofoldctl host add` registers) and expiry.
    private static func describe(_ path: String?, _ key: String) throws -> String {
        guard let path, let certificate = try NIOSSLCertificate.fromPEMFile(path).first else { return "\(key): none" }
        let days = (Int(certificate.notValidAfter) - Int(time(nil))) / 86_400
        return "\(key) \(path): SHA-256 fingerprint \(try TierTLS.fingerprint(certificate)), expires in \(days) day\(days == 1 ? "" : "s")"
    }
}
