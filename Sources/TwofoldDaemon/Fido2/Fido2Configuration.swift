/// FIDO2 security keys (twofoldd.conf: `fido2_*`). The relying-party id is the installation's,
/// set by the admin: never the host name (a key registered on one host would fail on the next)
/// and never a shared default (two installations would accept each other's assertions).
public struct Fido2Configuration: Sendable, Equatable {
    /// e.g. `pam://example.com`; nil: keys are neither offered nor registered.
    public var rpID: String?
    /// PEM file of the CA certificates a key's attestation must chain to (with the policy's AAGUID list).
    public var attestationCAFile: String?
    /// How long the module waits for the touch (seconds).
    public var touchTimeoutSeconds = 30

    public init() {}

    /// Sets `key` if it is a FIDO2 key; false if it is not one.
    mutating func set(key: String, value: String, at: String, path: () throws -> String, int: (ClosedRange<Int>) throws -> Int) throws -> Bool {
        switch key {
        case "fido2_rp_id" where value.isEmpty: rpID = nil
        case "fido2_rp_id":
            guard Self.isValidRPID(value) else {
                throw ConfigurationError("\(at): fido2_rp_id must be 1 to 255 printable characters without spaces, e.g. pam://example.com")
            }
            rpID = value
        case "fido2_attestation_ca": attestationCAFile = value.isEmpty ? nil : try path()
        case "fido2_timeout": touchTimeoutSeconds = try int(5...120)
        default: return false
        }
        return true
    }

    static func isValidRPID(_ value: String) -> Bool {
        (1...255).contains(value.utf8.count) && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }
    }

    /// What `--check-config` and a start refuse: keys set up in part. (A policy that allows keys
    /// without an rp id is refused where the policy is checked.)
    func check() throws {
        if rpID == nil, let file = attestationCAFile {
            throw ConfigurationError("fido2_attestation_ca is set (\(file)) but fido2_rp_id is not: set the installation's relying-party id, e.g. fido2_rp_id = pam://example.com")
        }
    }
}
