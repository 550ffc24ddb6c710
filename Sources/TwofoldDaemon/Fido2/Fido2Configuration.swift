import TwofoldCrypto
import TwofoldProtocol

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

    /// These settings with the touch shortened so that the connection's idle timeout (seconds)
    /// cannot end a dialog while the user touches the key and types a PIN (a minute at most).
    public func fitting(idleTimeout idle: Int) -> Fido2Configuration {
        var fitted = self
        fitted.touchTimeoutSeconds = max(5, min(touchTimeoutSeconds, idle - 70))
        return fitted
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

/// The FIDO2 part of `twofoldd --check-config`: a policy (the file's, or the one stored) that
/// lets logins use keys needs the installation's relying-party id, which has no default.
public enum Fido2Check {
    public static func report(configuration: DaemonConfiguration, environment: [String: String]) async throws -> [String] {
        let stored = try await StoreFactory.storedSetting(PolicyHolder.settingKey, configuration: configuration, environment: environment)
        let document = stored.flatMap { try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array($0.utf8)) }
            ?? Policy.document(from: configuration)
        let allowed = ControlService.allowsKeys(document)
        guard let rpID = configuration.fido2.rpID else {
            if allowed {
                throw ConfigurationError("the \(stored == nil ? "" : "stored ")policy allows the factor kind fido2, but fido2_rp_id is not set: set the installation's relying-party id (e.g. pam://example.com; every server the same, never a host name)")
            }
            return []
        }
        var lines = ["security keys: relying-party id \(rpID)" + (allowed ? "" : " (the policy allows no fido2 factor yet)")]
        if !document.fido2AAGUIDs.isEmpty, configuration.fido2.attestationCAFile == nil {
            throw ConfigurationError("the policy lists key models (fido2AAGUIDs) but fido2_attestation_ca is not set: no key could be registered")
        }
        if let file = configuration.fido2.attestationCAFile {
            guard let count = Certificate.countPEM(file) else { throw ConfigurationError("fido2_attestation_ca: \(file) cannot be read or holds no certificate") }
            lines.append("security keys: \(count) attestation CA certificate\(count == 1 ? "" : "s") in \(file)")
        }
        return lines
    }
}
