/// The signature algorithms a FIDO2 credential may use (COSE identifiers, RFC 9053).
public enum COSEAlgorithm: Int, Codable, Sendable, CaseIterable {
    /// ECDSA with SHA-256 on P-256; the public key is stored as the 65-byte uncompressed point.
    case es256 = -7
    /// Ed25519; the public key is stored as its 32 bytes.
    case edDSA = -8

    /// `ES256`, `EdDSA`: what listings show.
    public var name: String {
        switch self {
        case .es256: "ES256"
        case .edDSA: "EdDSA"
        }
    }
}

/// One FIDO2 security key of a user: a credential registered for the installation's relying party.
/// Nothing in it is secret (a public key and an id), so it is stored unsealed and shared by the fleet.
public struct Fido2Credential: Sendable, Equatable, Codable {
    /// Unique per user among keys (`FactorName` rules): "key", "blue-key".
    public var name: String
    /// The credential id the key gave at registration (1 to `maxIDLength` bytes); unique in the store.
    public var id: [UInt8]
    public var algorithm: COSEAlgorithm
    /// ES256: 0x04 ‖ x ‖ y (65 bytes); EdDSA: 32 bytes.
    public var publicKey: [UInt8]
    /// The signature counter last seen; 0 for a key without one.
    public var signCount: UInt32
    /// The authenticator model (16 bytes; all zero when the key gave none).
    public var aaguid: [UInt8]
    public var addedAtMillis: Int64
    public var lastUsedMillis: Int64?

    public static let maxIDLength = 1_023

    public init(name: String, id: [UInt8], algorithm: COSEAlgorithm, publicKey: [UInt8], signCount: UInt32 = 0,
                aaguid: [UInt8] = [UInt8](repeating: 0, count: 16), addedAtMillis: Int64 = 0, lastUsedMillis: Int64? = nil) {
        self.name = name
        self.id = id
        self.algorithm = algorithm
        self.publicKey = publicKey
        self.signCount = signCount
        self.aaguid = aaguid
        self.addedAtMillis = addedAtMillis
        self.lastUsedMillis = lastUsedMillis
    }

    /// Whether `next`, the counter of an assertion, may follow `signCount`: when either is
    /// non-zero the new one must be greater (WebAuthn §6.1.1); two zeros are a key without a counter.
    /// A counter that does not move forward is a cloned key. The store applies the same rule in
    /// the login's commit, so two hosts cannot both accept the same count.
    public static func counterAdvances(from stored: UInt32, to next: UInt32) -> Bool {
        (stored == 0 && next == 0) || next > stored
    }

    /// The AAGUID as a UUID string, lower case: `"00000000-0000-0000-0000-000000000000"` for none.
    public var aaguidText: String { Self.uuidText(aaguid) }

    /// The 16 bytes of a UUID written with or without its dashes (any case); nil otherwise.
    public static func uuidBytes(_ text: String) -> [UInt8]? {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32, text.count == 32 || text.count == 36 else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    public static func uuidText(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        guard hex.count == 32 else { return hex }
        let chars = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(chars[$0]) }.joined(separator: "-")
    }
}

/// A user's key with its user (admin listings).
public struct UserKey: Sendable, Equatable {
    public var user: String
    public var key: Fido2Credential

    public init(user: String, key: Fido2Credential) {
        self.user = user
        self.key = key
    }
}
