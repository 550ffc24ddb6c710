import Testing
import TwofoldCore
import TwofoldCrypto

/// RFC 4226 Appendix D: HOTP, SHA-1, 6 digits, secret "12345678901234567890".
@Test("RFC 4226 Appendix D HOTP values", arguments: [
    (UInt64(0), "755224"), (1, "287082"), (2, "359152"), (3, "969429"), (4, "338314"),
    (5, "254676"), (6, "287922"), (7, "162583"), (8, "399871"), (9, "520489"),
])
func rfc4226(counter: UInt64, expected: String) {
    let secret = ascii("12345678901234567890")
    #expect(OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: .sha1) == expected)
}

/// RFC 6238 Appendix B: TOTP, 8 digits, period 30, with the 20/32/64-byte ASCII seeds.
@Test("RFC 6238 Appendix B TOTP rows", arguments: [
    (Int64(59), HashAlgorithm.sha1, "94287082"),
    (59, .sha256, "46119246"),
    (59, .sha512, "90693936"),
    (1111111109, .sha1, "07081804"),
    (1111111109, .sha256, "68084774"),
    (1111111109, .sha512, "25091201"),
    (1111111111, .sha1, "14050471"),
    (1111111111, .sha256, "67062674"),
    (1111111111, .sha512, "99943326"),
    (1234567890, .sha1, "89005924"),
    (1234567890, .sha256, "91819424"),
    (1234567890, .sha512, "93441116"),
    (2000000000, .sha1, "69279037"),
    (2000000000, .sha256, "90698825"),
    (2000000000, .sha512, "38618901"),
    (20000000000, .sha1, "65353130"),
    (20000000000, .sha256, "77737706"),
    (20000000000, .sha512, "47863826"),
])
func rfc6238(time: Int64, algorithm: HashAlgorithm, expected: String) {
    let seed: String
    switch algorithm {
    case .sha1: seed = "12345678901234567890"
    case .sha256: seed = "12345678901234567890123456789012"
    case .sha512: seed = "1234567890123456789012345678901234567890123456789012345678901234"
    }
    let parameters = OTPParameters(method: .totp, algorithm: algorithm, digits: 8, period: 30)
    #expect(OneTimeCode.totp(secret: ascii(seed), unixTime: time, parameters: parameters) == expected)
}

/// RFC 4648 §10 test vectors (shown there with padding; we encode without it).
@Test("RFC 4648 base32 vectors", arguments: [
    ("", ""), ("f", "MY======"), ("fo", "MZXQ===="), ("foo", "MZXW6==="),
    ("foob", "MZXW6YQ="), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI======"),
])
func rfc4648(plain: String, padded: String) throws {
    let unpadded = String(padded.filter { $0 != "=" })
    #expect(Base32.encode(Array(plain.utf8)) == unpadded)
    #expect(try Base32.decode(padded) == Array(plain.utf8))
    #expect(try Base32.decode(unpadded) == Array(plain.utf8))
}

/// Steps floor towards negative infinity: step · period ≤ t < (step + 1) · period, also for t < 0.
@Test("time step is floor(t / period) for any sign")
func stepFloors() {
    var rng = SeededGenerator()
    for _ in 0..<2_000 {
        let t = Int64.random(in: -10_000_000_000 ... 10_000_000_000, using: &rng)
        let period = Int.random(in: 1...300, using: &rng)
        let s = OneTimeCode.step(unixTime: t, period: period)
        #expect(s * Int64(period) <= t && t < (s + 1) * Int64(period), "t=\(t) period=\(period) seed=\(rng.seed)")
    }
}
