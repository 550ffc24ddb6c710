#if canImport(Glibc)
import Glibc
#endif
import NIOSSL
import TwofoldProtocol

/// What `twofoldd --check-config` says of the fleet keys: the role, and for a server or a relay
/// that its certificate, key and CA load and what they are (a start would refuse what fails here).
public enum FleetCheck {
    public static func report(_ fleet: FleetConfiguration, environment: [String: String]) throws -> [String] {
        switch fleet.role {
        case .single:
            return []
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

    /// The fingerprint and expiry (ms since the epoch) of this daemon's certificate, if it reads.
    static func certificate(_ fleet: FleetConfiguration) -> (fingerprint: String, notAfterMillis: Int64)? {
        guard let path = fleet.tlsCertificate, let certificate = try? NIOSSLCertificate.fromPEMFile(path).first,
              let fingerprint = try? TierTLS.fingerprint(certificate) else { return nil }
        return (fingerprint, Int64(certificate.notValidAfter) * 1000)
    }

    /// What a server says of its part in the fleet (`serverInfo`).
    static func serverInfo(_ fleet: FleetConfiguration) -> FleetInfo? {
        guard fleet.role == .server else { return nil }
        let certificate = certificate(fleet)
        return FleetInfo(role: "server", listen: fleet.listen?.description, certificateFingerprint: certificate?.fingerprint,
                         certificateNotAfterMillis: certificate?.notAfterMillis)
    }

    /// The first certificate of a file: its fingerprint (what `twofoldctl host add` registers) and expiry.
    private static func describe(_ path: String?, _ key: String) throws -> String {
        guard let path, let certificate = try NIOSSLCertificate.fromPEMFile(path).first else { return "\(key): none" }
        let days = (Int(certificate.notValidAfter) - Int(time(nil))) / 86_400
        return "\(key) \(path): SHA-256 fingerprint \(try TierTLS.fingerprint(certificate)), expires in \(days) day\(days == 1 ? "" : "s")"
    }
}
