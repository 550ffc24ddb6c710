import TwofoldStore

extension HostRegistry {
    /// The registry of the store the servers share.
    convenience init(store: any TwofoldStore) {
        self.init(lookup: { fingerprint in
            try await store.hostCertificate(fingerprint: fingerprint).map { RegisteredCertificate(host: $0.host, revoked: $0.revokedMillis != nil) }
        }, listing: {
            var all: [String: RegisteredCertificate] = [:]
            for certificate in try await store.hostCertificates(host: nil) {
                all[certificate.fingerprint] = RegisteredCertificate(host: certificate.host, revoked: certificate.revokedMillis != nil)
            }
            return all
        })
    }
}
