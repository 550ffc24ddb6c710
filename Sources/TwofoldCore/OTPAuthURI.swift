import TwofoldCrypto

/// An `otpauth://` enrollment URI (the Google Authenticator key URI format), as shown in a QR code.
public struct OTPAuthURI: Sendable {
    public var issuer: String?
    public var account: String
    public var secret: SecretBytes
    public var parameters: OTPParameters
    /// HOTP initial counter; 0 for TOTP.
    public var counter: UInt64

    public init(issuer: String?, account: String, secret: SecretBytes, parameters: OTPParameters = OTPParameters(), counter: UInt64 = 0) {
        self.issuer = issuer
        self.account = account
        self.secret = secret
        self.parameters = parameters
        self.counter = counter
    }

    /// otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer&algorithm=SHA1&digits=6&period=30
    /// (hotp: &counter=N instead of period). Label and values are percent-encoded per RFC 3986.
    public func uriString() -> String {
        var secretBytes = secret.copyBytes()
        defer { Crypto.wipe(&secretBytes) }
        let issuerText = issuer.flatMap { $0.isEmpty ? nil : $0 }
        var uri = "otpauth://" + parameters.method.rawValue + "/"
        if let issuerText { uri += Self.percentEncode(issuerText) + ":" }
        uri += Self.percentEncode(account)
        uri += "?secret=" + Base32.encode(secretBytes)
        if let issuerText { uri += "&issuer=" + Self.percentEncode(issuerText) }
        uri += "&algorithm=" + parameters.algorithm.rawValue
        uri += "&digits=\(parameters.digits)"
        switch parameters.method {
        case .totp: uri += "&period=\(parameters.period)"
        case .hotp: uri += "&counter=\(counter)"
        }
        return uri
    }

    /// Parses an otpauth URI, checking scheme, type, secret, issuer consistency, algorithm, digits (6...8),
    /// period, the HOTP counter and the account. Names and type are case-insensitive, '+' in a query value is a space,
    /// unknown parameters (e.g. image) are ignored. Throws `CoreError.invalidURI(reason)`; reasons never contain the secret.
    public static func parse(_ text: String) throws -> OTPAuthURI {
        var rest = Substring(text.trimmingASCIIWhitespace())
        let scheme = "otpauth://"
        guard rest.utf8.count >= scheme.utf8.count,
              String(rest.prefix(scheme.count)).asciiLowercased() == scheme
        else { throw CoreError.invalidURI("scheme is not otpauth://") }
        rest = rest.dropFirst(scheme.count)
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }

        guard let slash = rest.firstIndex(of: "/") else { throw CoreError.invalidURI("missing type and label") }
        let method: OTPMethod
        switch String(rest[..<slash]).asciiLowercased() {
        case "totp": method = .totp
        case "hotp": method = .hotp
        default: throw CoreError.invalidURI("unknown type (expected totp or hotp)")
        }
        rest = rest[rest.index(after: slash)...]

        let rawLabel: Substring
        let rawQuery: Substring
        if let question = rest.firstIndex(of: "?") {
            rawLabel = rest[..<question]
            rawQuery = rest[rest.index(after: question)...]
        } else {
            rawLabel = rest
            rawQuery = ""
        }

        // The separator is a literal ':' (our form, which escapes colons inside the parts) or an escaped one.
        let labelParts: [Substring]
        if let colon = rawLabel.firstIndex(of: ":") {
            labelParts = [rawLabel[..<colon], rawLabel[rawLabel.index(after: colon)...]]
        } else {
            labelParts = [rawLabel]
        }
        var decodedParts: [String] = []
        for part in labelParts {
            guard let decoded = percentDecode(part, plusIsSpace: false) else {
                throw CoreError.invalidURI("label has invalid percent-encoding")
            }
            decodedParts.append(decoded)
        }
        if decodedParts.count == 1, let colon = decodedParts[0].firstIndex(of: ":") {
            let whole = decodedParts[0]
            decodedParts = [String(whole[..<colon]), String(whole[whole.index(after: colon)...])]
        }
        var labelIssuer: String?
        let account = decodedParts[decodedParts.count - 1].trimmingASCIIWhitespace()
        if decodedParts.count == 2 { labelIssuer = decodedParts[0].trimmingASCIIWhitespace() }
        if labelIssuer?.isEmpty == true { labelIssuer = nil }
        guard !account.isEmpty else { throw CoreError.invalidURI("empty account name") }

        var query: [String: String] = [:]
        for pair in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let key: Substring
            let rawValue: Substring
            if let eq = pair.firstIndex(of: "=") {
                key = pair[..<eq]
                rawValue = pair[pair.index(after: eq)...]
            } else {
                key = pair
                rawValue = ""
            }
            let name = String(key).asciiLowercased()
            guard let value = percentDecode(rawValue, plusIsSpace: true) else {
                throw CoreError.invalidURI("a parameter has invalid percent-encoding")
            }
            guard query[name] == nil else { throw CoreError.invalidURI("a parameter appears more than once") }
            query[name] = value
        }

        guard let secretText = query["secret"], !secretText.isEmpty else { throw CoreError.invalidURI("missing secret") }
        var secretBytes: [UInt8]
        do {
            secretBytes = try Base32.decode(secretText)
        } catch let CoreError.invalidBase32(reason) {
            throw CoreError.invalidURI("secret is not valid base32: \(reason)")
        }
        guard !secretBytes.isEmpty else { throw CoreError.invalidURI("missing secret") }
        let secret = SecretBytes(consuming: &secretBytes)

        var issuer = labelIssuer
        if let param = query["issuer"]?.trimmingASCIIWhitespace(), !param.isEmpty {
            if let labelIssuer, labelIssuer != param {
                throw CoreError.invalidURI("issuer in the label differs from the issuer parameter")
            }
            issuer = param
        }

        var parameters = OTPParameters(method: method)
        if let text = query["algorithm"] {
            guard let algorithm = HashAlgorithm(rawValue: text.asciiUppercased()) else {
                throw CoreError.invalidURI("unknown algorithm (expected SHA1, SHA256 or SHA512)")
            }
            parameters.algorithm = algorithm
        }
        if let text = query["digits"] {
            guard let digits = Int(text), (6...8).contains(digits) else {
                throw CoreError.invalidURI("digits must be 6, 7 or 8")
            }
            parameters.digits = digits
        }
        var counter: UInt64 = 0
        switch method {
        case .totp:
            if let text = query["period"] {
                guard let period = Int(text), (1...300).contains(period) else {
                    throw CoreError.invalidURI("period must be a whole number of seconds from 1 to 300")
                }
                parameters.period = period
            }
        case .hotp:
            guard let text = query["counter"] else { throw CoreError.invalidURI("hotp URI without counter") }
            guard let value = UInt64(text) else { throw CoreError.invalidURI("counter is not a non-negative integer") }
            counter = value
        }
        return OTPAuthURI(issuer: issuer, account: account, secret: secret, parameters: parameters, counter: counter)
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters and '@'.
    static func percentEncode(_ text: String) -> String {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "@"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes %XX escapes (and '+' as space in query values); nil on a bad escape or invalid UTF-8.
    static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%") {
                guard let h = iterator.next().flatMap(hexValue), let l = iterator.next().flatMap(hexValue) else { return nil }
                out.append(h << 4 | l)
            } else if plusIsSpace, b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

fileprivate extension StringProtocol {
    func asciiLowercased() -> String {
        String(decoding: utf8.map { (0x41...0x5A).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }

    func asciiUppercased() -> String {
        String(decoding: utf8.map { (0x61...0x7A).contains($0) ? $0 - 32 : $0 }, as: UTF8.self)
    }

    func trimmingASCIIWhitespace() -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
