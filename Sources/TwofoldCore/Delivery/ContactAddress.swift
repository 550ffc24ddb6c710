/// A contact's address, checked and normalised, and its masked form for listings and prompts.
public enum ContactAddress {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        public init(_ text: String) { description = text }
    }

    /// The longest address kept (RFC 5321's path limit).
    public static let maxLength = 254

    /// The address in the form stored: an email address with its domain lower-cased; a phone number
    /// as `+` and its digits (spaces, dashes, dots and brackets typed between them are dropped).
    public static func normalize(_ value: String, channel: DeliveryChannel) throws -> String {
        switch channel {
        case .email: return try email(value)
        case .sms: return try phone(value)
        }
    }

    static func email(_ value: String) throws -> String {
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw Invalid("an email address has one '@', e.g. alice@example.com") }
        let local = String(parts[0]), domain = parts[1].lowercased()
        guard value.utf8.count <= maxLength, !local.isEmpty, local.utf8.count <= 64 else {
            throw Invalid("an email address has 1 to 64 characters before the '@' and at most 254 in all")
        }
        // Printable ASCII without spaces, quotes, brackets or commas: what a shell, a header or a
        // log line would carry without surprise (quoted local parts are not accepted).
        let forbidden = Set("\"(),:;<>[\\]` ".utf8)
        guard local.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !forbidden.contains($0) }),
              !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..") else {
            throw Invalid("the part before the '@' may hold letters, digits and !#$%&'*+-/=?^_{|}~. only")
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        }) else {
            throw Invalid("the domain after the '@' must be a host name such as example.com (letters, digits, '-', dots)")
        }
        return local + "@" + domain
    }

    static func phone(_ value: String) throws -> String {
        let kept = value.unicodeScalars.filter { !" -.()".unicodeScalars.contains($0) }
        let text = String(String.UnicodeScalarView(kept))
        guard text.hasPrefix("+") else {
            throw Invalid("a phone number is written in international (E.164) form: '+', the country code and the number, e.g. +4915112345678")
        }
        let digits = text.dropFirst()
        guard (8...15).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.first != "0" else {
            throw Invalid("an E.164 phone number is '+' and 8 to 15 digits, the first not 0, e.g. +4915112345678")
        }
        return text
    }

    /// Enough to recognise one's own address, not enough to learn someone else's:
    /// `a***@example.com`, `+49 *** *** 12`.
    public static func masked(_ value: String, channel: DeliveryChannel) -> String {
        switch channel {
        case .email:
            guard let at = value.firstIndex(of: "@"), let first = value.first else { return "***" }
            return "\(first)***\(value[at...])"
        case .sms:
            let digits = Array(value.dropFirst())
            guard digits.count >= 6 else { return "+*** ***" }
            return "+\(String(digits.prefix(2))) *** *** \(String(digits.suffix(2)))"
        }
    }
}
