#if canImport(Glibc)
import Glibc
#endif
import NIOSSL
import TwofoldCrypto
import TwofoldProtocol

/// The TLS of the tier: TLS 1.3 only, both sides authenticated, the relay protocol's version chosen
/// by ALPN. Server and host certificates come from different CAs, so a host's certificate cannot
/// serve (relays trust only `tls_server_ca`) and a server's cannot pose as a host (servers trust
/// only `tls_client_ca`, and then only certificates in the host registry).
enum TierTLS {
    /// A server's context: presents `tls_certificate`, requires a client certificate that chains
    /// to `tls_client_ca` (no host name check: who the host is, the registry says).
    static func serverContext(_ fleet: FleetConfiguration, environment: [String: String]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try chain(fleet.tlsCertificate, key: "tls_certificate"),
            privateKey: .privateKey(try privateKey(fleet.tlsKey, environment: environment)))
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(try certificates(fleet.tlsClientCA, key: "tls_client_ca"))
        return try context(configuration)
    }

    /// A relay's context: presents its host's certificate, accepts a server only with a certificate
    /// that chains to `tls_server_ca` and names the server as `servers` spells it.
    static func clientContext(_ fleet: FleetConfiguration, environment: [String: String]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = try chain(fleet.tlsCertificate, key: "tls_certificate")
        configuration.privateKey = .privateKey(try privateKey(fleet.tlsKey, environment: environment))
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try certificates(fleet.tlsServerCA, key: "tls_server_ca"))
        return try context(configuration)
    }

    /// SHA-256 of the certificate's DER, lowercase hex: how the host registry knows a certificate.
    static func fingerprint(_ certificate: NIOSSLCertificate) throws -> String {
        Crypto.sha256(try certificate.toDERBytes()).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    private static func context(_ base: TLSConfiguration) throws -> NIOSSLContext {
        var configuration = base
        configuration.minimumTLSVersion = .tlsv13
        configuration.applicationProtocols = RelayProtocol.versions.map(RelayProtocol.alpn)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigurationError("cannot set up TLS: \(error)")
        }
    }

    private static func certificates(_ path: String?, key: String) throws -> [NIOSSLCertificate] {
        guard let path else { throw ConfigurationError("\(key) is not set") }
        do {
            let found = try NIOSSLCertificate.fromPEMFile(path)
            guard !found.isEmpty else { throw ConfigurationError("\(key) \(path) holds no certificate") }
            return found
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("cannot read \(key) \(path): \(error)")
        }
    }

    private static func chain(_ path: String?, key: String) throws -> [NIOSSLCertificateSource] {
        try certificates(path, key: key).map { .certificate($0) }
    }

    /// The systemd credential that stands in for `tls_key` under the unit (whose dynamic user cannot
    /// read the root-only file): `LoadCredential=tls-key:/etc/twofold/tls/host.key`.
    static let keyCredential = "tls-key"

    /// The credential when systemd passed one, else the `tls_key` file. Errors name the file and
    /// never its content.
    private static func privateKey(_ configured: String?, environment: [String: String]) throws -> NIOSSLPrivateKey {
        let credential = environment["CREDENTIALS_DIRECTORY"].map { $0 + "/" + keyCredential }
        let path = credential.flatMap { access($0, R_OK) == 0 ? $0 : nil } ?? configured
        guard let path else { throw ConfigurationError("tls_key is not set") }
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw ConfigurationError("cannot read tls_key \(path): not a readable PEM private key")
        }
    }
}
