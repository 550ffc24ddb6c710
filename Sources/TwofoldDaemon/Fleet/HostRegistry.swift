import Synchronization

/// A certificate of the host registry as the tier checks it at a handshake.
struct RegisteredCertificate: Sendable, Equatable {
    var host: String
    var revoked: Bool
}

/// The host registry as a server reads it at every handshake: a copy of the store's table, read
/// again every `registry_refresh_seconds` (so a host revoked through another server loses its
/// connections here within that time) and at once for a certificate the copy does not know (a
/// host added a moment ago connects at once).
final class HostRegistry: Sendable {
    typealias Lookup = @Sendable (_ fingerprint: String) async throws -> RegisteredCertificate?
    typealias Listing = @Sendable () async throws -> [String: RegisteredCertificate]

    /// Why a certificate is refused.
    enum Refusal: Error, Equatable, CustomStringConvertible {
        case unknown
        case revoked(host: String)
        case unavailable(String)

        var description: String {
            switch self {
            case .unknown: "the certificate is not in the host registry (twofoldctl host add)"
            case .revoked(let host): "the certificate of host \(host) was revoked"
            case .unavailable(let why): "the host registry cannot be read: \(why)"
            }
        }
    }

    private let lookup: Lookup
    private let listing: Listing
    private let known = Mutex<[String: RegisteredCertificate]>([:])

    init(lookup: @escaping Lookup, listing: @escaping Listing) {
        self.lookup = lookup
        self.listing = listing
    }

    /// The host a certificate stands for, or why it is refused, from the copy (nil: the copy does
    /// not know it). Synchronous, so a known host's handshake decides on its loop.
    func cachedHost(fingerprint: String) -> Result<String, Refusal>? {
        known.withLock { $0[fingerprint] }.map(Self.decision)
    }

    /// The host a certificate stands for, or why it is refused: from the copy, else the store.
    func host(fingerprint: String) async -> Result<String, Refusal> {
        if let known = cachedHost(fingerprint: fingerprint) { return known }
        let entry: RegisteredCertificate?
        do {
            entry = try await lookup(fingerprint)
        } catch {
            return .failure(.unavailable(String(describing: error)))
        }
        guard let entry else { return .failure(.unknown) }
        known.withLock { $0[fingerprint] = entry }
        return Self.decision(entry)
    }

    private static func decision(_ entry: RegisteredCertificate) -> Result<String, Refusal> {
        entry.revoked ? .failure(.revoked(host: entry.host)) : .success(entry.host)
    }

    /// Reads the whole registry again; returns the fingerprints revoked now.
    func refresh() async throws -> Set<String> {
        let fresh = try await listing()
        known.withLock { $0 = fresh }
        return Set(fresh.filter(\.value.revoked).keys)
    }
}
