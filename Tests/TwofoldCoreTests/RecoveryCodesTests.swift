import Testing
import TwofoldCore
import TwofoldCrypto

@Suite("Recovery codes")
struct RecoveryCodesTests {
    static func matchesFormat(_ code: String) -> Bool {
        let format = try! Regex("^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{2}$")
        return code.wholeMatch(of: format) != nil
    }

    @Test("codes have the xxxx-xxxx-xx Crockford format and are distinct")
    func format() throws {
        let codes = try RecoveryCodes.generate()
        #expect(codes.count == RecoveryCodes.defaultCount)
        #expect(Set(codes).count == codes.count)
        for code in codes { #expect(Self.matchesFormat(code)) }
        #expect(!Self.matchesFormat("abcd-efgh-iu") && !Self.matchesFormat("abcdefgh-jk") && !Self.matchesFormat("ABCD-EFGH-JK"))
        let many = try RecoveryCodes.generate(count: 500)
        #expect(Set(many).count == 500)
        #expect(many.allSatisfy(Self.matchesFormat))
    }

    @Test("the alphabet is Crockford base32 in lower case, and generation uses all of it")
    func alphabetCoverage() throws {
        #expect(RecoveryCodes.alphabet.count == 32)
        #expect(Set(RecoveryCodes.alphabet).count == 32)
        #expect(!RecoveryCodes.alphabet.contains { "ilou".contains($0) })
        let symbols = try RecoveryCodes.generate(count: 1_000).joined().filter { $0 != "-" }
        // 10,000 uniform symbols: each of the 32 is expected ~312 times.
        var counts: [Character: Int] = [:]
        for s in symbols { counts[s, default: 0] += 1 }
        #expect(Set(counts.keys) == Set(RecoveryCodes.alphabet))
        #expect(counts.values.allSatisfy { (200...450).contains($0) })
    }

    @Test("canonical form forgives case, spacing, dashes and i/l/o look-alikes")
    func canonical() throws {
        var rng = SeededGenerator()
        for code in try RecoveryCodes.generate(count: 50) {
            let plain = code.filter { $0 != "-" }
            #expect(RecoveryCodes.canonical(code) == plain)
            var typed = ""
            for c in plain {
                var t = String(c)
                if c == "1" { t = ["1", "i", "I", "l", "L"].randomElement(using: &rng)! }
                if c == "0" { t = ["0", "o", "O"].randomElement(using: &rng)! }
                if Bool.random(using: &rng) { t = t.uppercased() }
                typed += t + ["", "", " ", "-"].randomElement(using: &rng)!
            }
            #expect(RecoveryCodes.canonical("  " + typed + " ") == plain, "seed \(rng.seed)")
        }
    }

    @Test("canonical rejects wrong lengths and foreign symbols", arguments: [
        "", "abcd-efgh-j", "abcd-efgh-jkm", "abcd-efgh-ju", "abcd-efgh-j!", "abcd_efgh_jk", "abcd-éfgh-jk", "abcd-efgh-jk\u{0}",
    ])
    func canonicalRejects(input: String) {
        #expect(RecoveryCodes.canonical(input) == nil)
        #expect(!RecoveryCodes.looksLikeRecoveryCode(input))
    }

    @Test("hashes are salted and peppered")
    func hashing() throws {
        let pepper = try SecretBytes(randomCount: 32)
        let code = try #require(RecoveryCodes.canonical(try RecoveryCodes.generate(count: 1)[0]))
        let a = try RecoveryCodes.makeHash(canonical: code, pepper: pepper)
        let b = try RecoveryCodes.makeHash(canonical: code, pepper: pepper)
        #expect(a.salt.count == 16 && a.hash.count == 32)
        #expect(a.salt != b.salt && a.hash != b.hash)
        #expect(RecoveryCodes.hash(canonical: code, salt: a.salt, pepper: pepper) == a.hash)
        #expect(a.hash == Crypto.hmac(.sha256, key: pepper, data: a.salt + Array(code.utf8)))
        #expect(RecoveryCodes.hash(canonical: code, salt: a.salt, pepper: try SecretBytes(randomCount: 32)) != a.hash)
    }

    @Test("match finds the right index among ten; a wrong code or pepper finds nothing")
    func matching() throws {
        let pepper = try SecretBytes(randomCount: 32)
        let codes = try RecoveryCodes.generate()
        let stored = try codes.enumerated().map { (index: 100 + $0.offset, hash: try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0.element)!, pepper: pepper)) }
        let shuffled = stored.shuffled()
        for (i, code) in codes.enumerated() {
            #expect(RecoveryCodes.match(code, against: shuffled, pepper: pepper) == 100 + i)
            #expect(RecoveryCodes.match(code.uppercased().replacingDashesWithSpaces(), against: shuffled, pepper: pepper) == 100 + i)
            #expect(RecoveryCodes.match(code, against: shuffled, pepper: try SecretBytes(randomCount: 32)) == nil)
        }
        let others = try RecoveryCodes.generate(count: 20).filter { !codes.contains($0) }
        for other in others { #expect(RecoveryCodes.match(other, against: shuffled, pepper: pepper) == nil) }
        #expect(RecoveryCodes.match("not a code", against: shuffled, pepper: pepper) == nil)
        #expect(RecoveryCodes.match(codes[0], against: [], pepper: pepper) == nil)
        let without = shuffled.filter { $0.index != 100 }
        #expect(RecoveryCodes.match(codes[0], against: without, pepper: pepper) == nil)
    }

    @Test("every candidate is compared: with a code stored twice the last one wins")
    func scansAll() throws {
        let pepper = try SecretBytes(randomCount: 32)
        let codes = try RecoveryCodes.generate()
        var stored = try codes.enumerated().map { (index: $0.offset, hash: try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical($0.element)!, pepper: pepper)) }
        stored.append((index: 99, hash: try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical(codes[2])!, pepper: pepper)))
        #expect(RecoveryCodes.match(codes[2], against: stored, pepper: pepper) == 99)
        #expect(RecoveryCodes.match(codes[3], against: stored, pepper: pepper) == 3)
    }

    @Test("recovery codes are told apart from OTP answers")
    func looksLike() throws {
        for code in try RecoveryCodes.generate(count: 20) {
            #expect(RecoveryCodes.looksLikeRecoveryCode(code))
            #expect(RecoveryCodes.looksLikeRecoveryCode(code.filter { $0 != "-" }.uppercased()))
        }
        var rng = SeededGenerator()
        for digits in 6...8 {
            let otp = String((0..<digits).map { _ in "0123456789".randomElement(using: &rng)! })
            #expect(!RecoveryCodes.looksLikeRecoveryCode(otp), "seed \(rng.seed)")
            #expect(!RecoveryCodes.looksLikeRecoveryCode(" " + otp.prefix(3) + " " + otp.dropFirst(3)), "seed \(rng.seed)")
        }
        #expect(!RecoveryCodes.looksLikeRecoveryCode("password"))
    }
}

private extension String {
    func replacingDashesWithSpaces() -> String { String(map { $0 == "-" ? " " : $0 }) }
}
