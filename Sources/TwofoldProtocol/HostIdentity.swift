/// The forms of a fleet host's identity that the CLI checks before sending and the daemon checks
/// again: its name (a DNS name, as its certificate's SAN holds it) and its certificate's SHA-256
/// fingerprint.
public enum HostIdentity {
    /// A plausible DNS host name, lower-cased (DNS names are case-insensitive: one host, one
    /// record); nil when it is not one: 1 to 253 bytes of labels of 1 to 63 letters, digits and
    /// '-' (not first or last), separated by single dots.
    public static func normalizedName(_ name: String) -> String? {
        let lower = name.lowercased()
        guard !lower.isEmpty, lower.utf8.count <= 253 else { return nil }
        let labels = lower.split(separator: ".", omittingEmptySubsequences: false)
        let valid = labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        }
        return valid ? lower : nil
    }

    /// A SHA-256 fingerprint as 64 lowercase hex digits, from 64 hex digits in either case, or 32
    /// pairs separated by colons (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints them);
    /// nil for anything else.
    public static func normalizedFingerprint(_ text: String) -> String? {
        let lower = text.lowercased()
        let digits: String
        if lower.contains(":") {
            let pairs = lower.split(separator: ":", omittingEmptySubsequences: false)
            guard pairs.count == 32, pairs.allSatisfy({ $0.utf8.count == 2 }) else { return nil }
            digits = pairs.joined()
        } else {
            digits = lower
        }
        guard digits.utf8.count == 64, digits.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return digits
    }
}
