import TwofoldCrypto

/// An enrollment read from another module's files, ready to import.
public struct ImportedEnrollment: Sendable {
    public var secret: SecretBytes
    public var parameters: OTPParameters
    /// HOTP: the next counter value.
    public var counter: UInt64
    /// Single-use codes that become recovery codes (google-authenticator scratch codes), canonical.
    public var recoveryCodes: [String]
    /// Things the import could not carry over as they were, for the admin (never secret).
    public var notes: [String]

    public init(secret: SecretBytes, parameters: OTPParameters, counter: UInt64 = 0, recoveryCodes: [String] = [], notes: [String] = []) {
        self.secret = secret
        self.parameters = parameters
        self.counter = counter
        self.recoveryCodes = recoveryCodes
        self.notes = notes
    }
}

/// Reads `~/.google_authenticator` files written by google-authenticator-libpam: the base32 secret
/// on the first line, `" OPTION` lines, then 8-digit scratch codes.
public enum GoogleAuthenticatorFile {
    public static func parse(_ text: String) throws -> ImportedEnrollment {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters() }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let first = lines.first, !first.isEmpty else { throw CoreError.invalidImport("google-authenticator file: no secret on the first line") }
        var raw = try Base32.decode(first)
        defer { Crypto.wipe(&raw) }
        guard raw.count >= 10 else { throw CoreError.invalidImport("google-authenticator file: the secret is shorter than 80 bits") }
        var parameters = OTPParameters()
        var counter: UInt64 = 0
        var scratch: [String] = []
        var notes: [String] = []
        var sawType = false
        for (number, line) in lines.dropFirst().enumerated() where !line.isEmpty {
            if line.hasPrefix("\"") {
                let words = line.dropFirst().split(separator: " ").map(String.init)
                guard let option = words.first else { continue }
                switch option {
                case "TOTP_AUTH":
                    parameters.method = .totp
                    sawType = true
                case "HOTP_COUNTER":
                    guard words.count == 2, let value = UInt64(words[1]) else { throw CoreError.invalidImport("google-authenticator file: bad HOTP_COUNTER on line \(number + 2)") }
                    parameters.method = .hotp
                    counter = value
                    sawType = true
                case "STEP_SIZE":
                    guard words.count == 2, let value = Int(words[1]), (1...300).contains(value) else { throw CoreError.invalidImport("google-authenticator file: bad STEP_SIZE on line \(number + 2)") }
                    parameters.period = value
                case "WINDOW_SIZE":
                    guard words.count == 2, let value = Int(words[1]), value >= 1 else { throw CoreError.invalidImport("google-authenticator file: bad WINDOW_SIZE on line \(number + 2)") }
                    if value != 3 {
                        notes.append("WINDOW_SIZE \(value) is not per-user in Twofold: the policy's window (±window steps) applies")
                    }
                case "DISALLOW_REUSE", "RATE_LIMIT":
                    break // Twofold always refuses reuse and always throttles.
                default:
                    notes.append("option \(option) is not carried over")
                }
            } else if RecoveryCodes.scratchCanonical(line) != nil {
                scratch.append(line)
            } else {
                throw CoreError.invalidImport("google-authenticator file: line \(number + 2) is neither an option nor an 8-digit scratch code")
            }
        }
        if !sawType { parameters.method = .totp }
        return ImportedEnrollment(secret: SecretBytes(raw), parameters: parameters, counter: counter,
                                  recoveryCodes: scratch.compactMap(RecoveryCodes.scratchCanonical), notes: notes)
    }
}

/// Reads one line of pam_oath's users.oath: `TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIME]]]`,
/// where TYPE is `HOTP`, `HOTP/E[/DIGITS]` or `HOTP/T<PERIOD>[/DIGITS]`.
public enum UsersOathLine {
    /// Parses the line; `user` must match its user field.
    public static func parse(_ line: String, user: String) throws -> ImportedEnrollment {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count >= 4 else { throw CoreError.invalidImport("users.oath: a line needs type, user, PIN and secret") }
        guard fields[1] == user else { throw CoreError.invalidImport("users.oath: the line is for another user") }
        guard fields[2] == "-" else { throw CoreError.invalidImport("users.oath: lines with a PIN are not supported (Twofold checks the password in its own PAM module)") }
        var parameters = OTPParameters(method: .hotp)
        let type = fields[0].split(separator: "/").map(String.init)
        guard type.first == "HOTP", type.count <= 3 else { throw CoreError.invalidImport("users.oath: unknown token type") }
        if type.count >= 2 {
            let mode = type[1]
            if mode == "E" {
                parameters.method = .hotp
            } else if mode.hasPrefix("T"), let period = Int(mode.dropFirst()), (1...300).contains(period) {
                parameters.method = .totp
                parameters.period = period
            } else {
                throw CoreError.invalidImport("users.oath: unknown token mode")
            }
        }
        if type.count == 3 {
            guard let digits = Int(type[2]), (6...8).contains(digits) else { throw CoreError.invalidImport("users.oath: digits must be 6, 7 or 8") }
            parameters.digits = digits
        }
        var raw = try hexDecode(fields[3])
        defer { Crypto.wipe(&raw) }
        guard raw.count >= 10 else { throw CoreError.invalidImport("users.oath: the secret is shorter than 80 bits") }
        var counter: UInt64 = 0
        if parameters.method == .hotp, fields.count >= 5 {
            guard let value = UInt64(fields[4]) else { throw CoreError.invalidImport("users.oath: bad counter") }
            counter = value
        }
        return ImportedEnrollment(secret: SecretBytes(raw), parameters: parameters, counter: counter)
    }

    /// The line for `user` in a users.oath file, or nil.
    public static func line(for user: String, in file: String) -> String? {
        file.split(separator: "\n").map(String.init).first { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return fields.count >= 2 && !line.hasPrefix("#") && fields[1] == user
        }
    }

    static func hexDecode(_ text: String) throws -> [UInt8] {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0, !chars.isEmpty else { throw CoreError.invalidImport("users.oath: the secret is not hex") }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else {
                Crypto.wipe(&out)
                throw CoreError.invalidImport("users.oath: the secret is not hex")
            }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        var s = self
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
