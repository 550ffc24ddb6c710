import TwofoldCrypto

/// One-time recovery codes: generation, canonical form, peppered salted hashes and matching.
public enum RecoveryCodes {
    /// Codes issued per batch.
    public static let defaultCount = 10
    /// Crockford base32, lower case.
    public static let alphabet: [Character] = Array("0123456789abcdefghjkmnpqrstvwxyz")
    /// Symbols per code (50 bits).
    static let symbolCount = 10
    /// Bytes of random salt per stored hash.
    static let saltCount = 16

    private static let alphabetBytes: [UInt8] = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    /// Codes "xxxx-xxxx-xx": 10 symbols = 50 bits each, from the CSPRNG, all distinct.
    public static func generate(count: Int = defaultCount) throws -> [String] {
        guard count > 0 else { return [] }
        var codes: [String] = []
        var seen = Set<String>()
        while codes.count < count {
            var random = try Crypto.randomBytes(symbolCount)
            defer { Crypto.wipe(&random) }
            // 32 divides 256, so the low five bits of a uniform byte are uniform.
            var symbols = random.map { alphabetBytes[Int($0 & 0x1f)] }
            defer { Crypto.wipe(&symbols) }
            let code = String(decoding: symbols[0..<4], as: UTF8.self) + "-"
                + String(decoding: symbols[4..<8], as: UTF8.self) + "-"
                + String(decoding: symbols[8..<10], as: UTF8.self)
            if seen.insert(code).inserted { codes.append(code) }
        }
        return codes
    }

    /// Lower-cases, drops spaces and dashes, maps i/l→1 and o→0; exactly 10 alphabet symbols, else nil.
    public static func canonical(_ input: String) -> String? {
        guard let bytes = canonicalBytes(input) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func canonicalBytes(_ input: String) -> [UInt8]? {
        guard input.utf8.count <= 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(symbolCount)
        for var b in input.utf8 {
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "-"):
                continue
            default:
                break
            }
            if b >= UInt8(ascii: "A"), b <= UInt8(ascii: "Z") { b += 32 }
            switch b {
            case UInt8(ascii: "i"), UInt8(ascii: "l"): b = UInt8(ascii: "1")
            case UInt8(ascii: "o"): b = UInt8(ascii: "0")
            default: break
            }
            guard alphabetBytes.contains(b), out.count < symbolCount else { return nil }
            out.append(b)
        }
        return out.count == symbolCount ? out : nil
    }

    /// HMAC-SHA256(pepper, salt || UTF-8 of canonical).
    public static func hash(canonical: String, salt: [UInt8], pepper: SecretBytes) -> [UInt8] {
        var message = salt + Array(canonical.utf8)
        defer { Crypto.wipe(&message) }
        return Crypto.hmac(.sha256, key: pepper, data: message)
    }

    /// A 16-byte random salt and the hash.
    public static func makeHash(canonical: String, pepper: SecretBytes) throws -> RecoveryCodeHash {
        let salt = try Crypto.randomBytes(saltCount)
        return RecoveryCodeHash(salt: salt, hash: hash(canonical: canonical, salt: salt, pepper: pepper))
    }

    /// The canonical form of an imported google-authenticator scratch code (exactly 8 digits,
    /// spaces and dashes ignored), kept apart from native codes by a prefix; nil otherwise.
    public static func scratchCanonical(_ input: String) -> String? {
        let digits = input.unicodeScalars.filter { $0 != " " && $0 != "-" }
        guard digits.count == 8, digits.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return "scratch:" + String(String.UnicodeScalarView(digits))
    }

    /// Compares against EVERY candidate with a constant-time compare and no early return; the matching index or nil.
    /// (Were one code stored twice, the last candidate would win: the scan never stops early.)
    /// `pepper` is the store's; a candidate that carries its own (moved in from a host) uses that.
    public static func match(_ input: String, against candidates: [(index: Int, hash: RecoveryCodeHash)], pepper: SecretBytes) -> Int? {
        guard let code = canonical(input) ?? scratchCanonical(input) else { return nil }
        var found: Int64 = 0
        var hit: Int64 = 0
        for candidate in candidates {
            var computed = hash(canonical: code, salt: candidate.hash.salt, pepper: candidate.hash.pepper ?? pepper)
            let equal = Crypto.constantTimeEqual(computed, candidate.hash.hash)
            Crypto.wipe(&computed)
            let m = BranchFree.mask(equal)
            found = BranchFree.select(m, Int64(candidate.index), found)
            hit |= m
        }
        return hit != 0 ? Int(found) : nil
    }

    /// True when the answer should be treated as a recovery code rather than an OTP
    /// (canonical form exists and it is not 6–8 plain digits).
    public static func looksLikeRecoveryCode(_ input: String) -> Bool {
        guard canonicalBytes(input) != nil else { return false }
        return (6...8).allSatisfy { CodeInput.normalize(input, digits: $0) == nil }
    }
}
