import Foundation
import NIOSSL
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// The host registry (fleet mode): an admin registers each host's TLS client certificate, as the
/// certificate itself or its fingerprint, lists them, and revokes a host. Every change is audited
/// (action "host") with the host's name in the record's `host`.
extension ControlService {
    func addHost(_ name: String, certificatePEM: String?, fingerprint: String?, notAfterMillis: Int64?,
                 peer: PeerCredentials) async throws -> ControlResponse {
        let host = try hostName(name)
        let identity: (fingerprint: String, notAfterMillis: Int64?)
        switch (certificatePEM, fingerprint) {
        case (let pem?, nil):
            guard notAfterMillis == nil else { throw ControlFailure(.invalidRequest, "give no expiry with a certificate: its own is used") }
            identity = try Self.identity(pem: pem, host: host)
        case (nil, let text?):
            guard let normalized = HostIdentity.normalizedFingerprint(text) else {
                throw ControlFailure(.invalidRequest, "a fingerprint is the certificate's SHA-256: 64 hex digits, or 32 pairs separated by colons")
            }
            identity = (normalized, notAfterMillis)
        default:
            throw ControlFailure(.invalidRequest, "give either a certificate or a fingerprint, not both or neither")
        }
        let now = clock.nowMillis()
        let certificate = HostCertificate(host: host, fingerprint: identity.fingerprint, notAfterMillis: identity.notAfterMillis, addedMillis: now)
        if let end = certificate.notAfterMillis, end <= now {
            throw ControlFailure(.invalidRequest, "the certificate expired at \(Self.utc(end)); register its renewal")
        }
        // Only to word the audit record: the store decides, and refuses a conflict, by itself.
        let known = try await store.hostCertificate(fingerprint: certificate.fingerprint)
        try await store.addHostCertificate(certificate)
        let expiry = certificate.notAfterMillis.map { ", expires \(Self.utc($0))" } ?? ""
        await audit("host", user: nil, peer: peer, outcome: known == nil ? "success" : "noop",
                    reason: "certificate \(certificate.fingerprint) \(known == nil ? "registered" : "already registered") for host '\(host)'\(expiry)",
                    host: host)
        let stored = try await store.hostCertificate(fingerprint: certificate.fingerprint) ?? certificate
        return .hosts([HostInfo(stored)])
    }

    func revokeHost(_ name: String, peer: PeerCredentials) async throws -> ControlResponse {
        let host = try hostName(name)
        let revoked = try await store.revokeHost(host, atMillis: clock.nowMillis())
        let certificates = try await hostInfos(host)
        guard revoked > 0 else {
            throw ControlFailure(.notFound, certificates.isEmpty
                ? "no host named '\(host)' is registered"
                : "host '\(host)' has no certificate in force: its \(certificates.count) were revoked before")
        }
        await audit("host", user: nil, peer: peer, outcome: "success",
                    reason: "host '\(host)' revoked: \(revoked) certificate(s) no longer accepted", host: host)
        await hostsChanged()
        return .hosts(certificates)
    }

    /// The certificates of `host` (nil: of every host), as the protocol lists them.
    func hostInfos(_ host: String?) async throws -> [HostInfo] {
        try await store.hostCertificates(host: host).map(HostInfo.init)
    }

    private static func utc(_ millis: Int64) -> String {
        Date(timeIntervalSince1970: Double(millis) / 1000).formatted(.iso8601)
    }

    private func hostName(_ name: String) throws -> String {
        guard let host = HostIdentity.normalizedName(name) else {
            throw ControlFailure(.invalidRequest, "a host name is a DNS name: labels of letters, digits and '-' separated by dots, at most 253 characters")
        }
        return host
    }

    /// The certificate's fingerprint (SHA-256 of its DER) and expiry, once its SAN names `host` as
    /// a DNS name (compared without case, as DNS does; no wildcards: one certificate, one host).
    private static func identity(pem: String, host: String) throws -> (fingerprint: String, notAfterMillis: Int64?) {
        let certificate: NIOSSLCertificate
        let der: [UInt8]
        do {
            certificate = try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)
            der = try certificate.toDERBytes()
        } catch {
            throw ControlFailure(.invalidRequest, "the certificate is not a PEM-encoded X.509 certificate")
        }
        let names = certificate._subjectAlternativeNames().map(SubjectName.init)
        guard names.contains(.dns(host)) else {
            let held = names.isEmpty ? "it has no subjectAltName" : "its subjectAltName holds " + names.map(\.description).joined(separator: ", ")
            throw ControlFailure(.invalidRequest, "the certificate is not for host '\(host)': \(held)")
        }
        return (Crypto.hex(Crypto.sha256(der)), Int64(certificate.notValidAfter) * 1000)
    }
}

extension HostInfo {
    init(_ certificate: HostCertificate) {
        self.init(name: certificate.host, fingerprint: certificate.fingerprint, notAfterMillis: certificate.notAfterMillis,
                  addedMillis: certificate.addedMillis, revokedMillis: certificate.revokedMillis)
    }
}

/// One subjectAltName entry, as an error message shows it (escaped: it is the certificate's text).
private enum SubjectName: Equatable, CustomStringConvertible {
    case dns(String), ip([UInt8]), other(String, String)

    init(_ name: _SubjectAlternativeName) {
        let bytes = Array(name.contents)
        switch name.nameType {
        case .dnsName: self = .dns(String(decoding: bytes, as: UTF8.self).lowercased())
        case .ipAddress: self = .ip(bytes)
        case .email: self = .other("email", String(decoding: bytes, as: UTF8.self))
        case .uri: self = .other("URI", String(decoding: bytes, as: UTF8.self))
        default: self = .other("other", "")
        }
    }

    var description: String {
        switch self {
        case .dns(let name): "DNS:" + DisplayText.escaped(name)
        case .ip(let bytes) where bytes.count == 4: "IP:" + bytes.map(String.init).joined(separator: ".")
        case .ip(let bytes): "IP:" + stride(from: 0, to: bytes.count - 1, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
        case .other(let kind, let value): kind + (value.isEmpty ? "" : ":" + DisplayText.escaped(value))
        }
    }
}
