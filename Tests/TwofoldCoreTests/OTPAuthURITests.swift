import Testing
import TwofoldCore
import TwofoldCrypto

@Suite("otpauth URIs")
struct OTPAuthURITests {
    static let parameterSets: [(OTPParameters, UInt64)] = {
        var sets: [(OTPParameters, UInt64)] = []
        for algorithm in HashAlgorithm.allCases {
            for digits in 6...8 {
                for period in [15, 30, 60, 300] {
                    sets.append((OTPParameters(method: .totp, algorithm: algorithm, digits: digits, period: period), 0))
                }
                for counter: UInt64 in [0, 1, 987_654_321, .max] {
                    sets.append((OTPParameters(method: .hotp, algorithm: algorithm, digits: digits), counter))
                }
            }
        }
        return sets
    }()

    static func expectSame(_ parsed: OTPAuthURI, _ original: OTPAuthURI) {
        #expect(parsed.issuer == original.issuer)
        #expect(parsed.account == original.account)
        #expect(parsed.secret.constantTimeEquals(original.secret))
        #expect(parsed.parameters == original.parameters)
        #expect(parsed.counter == original.counter)
    }

    @Test("round trips every method, algorithm, digit count and period", arguments: parameterSets)
    func roundTrip(parameters: OTPParameters, counter: UInt64) throws {
        let original = OTPAuthURI(issuer: "Twofold", account: "alice@example.com", secret: try OTPSecret.generate(),
                                  parameters: parameters, counter: counter)
        let text = original.uriString()
        #expect(text.hasPrefix("otpauth://\(parameters.method.rawValue)/Twofold:alice@example.com?secret="))
        #expect(text.contains("&issuer=Twofold"))
        Self.expectSame(try OTPAuthURI.parse(text), original)
    }

    @Test("round trips labels with spaces and special characters", arguments: [
        ("ACME Co", "john doe"),
        ("Ünïcødé Ltd.", "zoë@example.org"),
        ("A&B=C?", "user+tag@example.com"),
        ("50% off/#1", "a:b:c"),
        ("tab\there", "semi;colon,comma"),
    ])
    func specialLabels(issuer: String, account: String) throws {
        let original = OTPAuthURI(issuer: issuer, account: account, secret: try OTPSecret.generate())
        let text = original.uriString()
        #expect(!text.contains(" "))
        #expect(text.split(separator: "?").count == 2)
        #expect(text.split(separator: "#").count == 1)
        #expect(text.split(separator: "&").count == 5)   // secret, issuer, algorithm, digits, period
        Self.expectSame(try OTPAuthURI.parse(text), original)
    }

    @Test("without an issuer the label is just the account")
    func noIssuer() throws {
        let original = OTPAuthURI(issuer: nil, account: "bob", secret: try OTPSecret.generate())
        let text = original.uriString()
        #expect(text.hasPrefix("otpauth://totp/bob?secret="))
        #expect(!text.contains("issuer="))
        Self.expectSame(try OTPAuthURI.parse(text), original)
    }

    @Test("parses the Google Authenticator key URI example")
    func googleExample() throws {
        let uri = try OTPAuthURI.parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")
        #expect(uri.issuer == "Example")
        #expect(uri.account == "alice@google.com")
        #expect(uri.secret.copyBytes() == (try Base32.decode("JBSWY3DPEHPK3PXP")))
        #expect(uri.parameters == OTPParameters())
        #expect(uri.counter == 0)
    }

    @Test("accepts common variants: encoded colon, space after colon, issuer in one place only, lower-case names")
    func variants() throws {
        let secret = "JBSWY3DPEHPK3PXP"
        let a = try OTPAuthURI.parse("otpauth://totp/ACME%20Co%3A%20john.doe%40email.com?secret=\(secret)&issuer=ACME+Co&period=60")
        #expect(a.issuer == "ACME Co" && a.account == "john.doe@email.com" && a.parameters.period == 60)
        let b = try OTPAuthURI.parse("OTPAUTH://TOTP/Example:alice?secret=\(secret.lowercased())&algorithm=sha256&digits=8")
        #expect(b.issuer == "Example" && b.parameters.algorithm == .sha256 && b.parameters.digits == 8)
        let c = try OTPAuthURI.parse("otpauth://totp/alice?secret=\(secret)&issuer=Example")
        #expect(c.issuer == "Example" && c.account == "alice")
        let d = try OTPAuthURI.parse("otpauth://hotp/alice?secret=\(secret)&counter=42&image=https%3A%2F%2Fexample.com%2Fa.png")
        #expect(d.issuer == nil && d.parameters.method == .hotp && d.counter == 42)
    }

    static let secret = "JBSWY3DPEHPK3PXPJBSWY3DP"

    @Test("rejects with a reason", arguments: [
        ("https://totp/Example:alice?secret=\(secret)", "scheme"),
        ("otpauth:/totp/Example:alice?secret=\(secret)", "scheme"),
        ("otpauth://motp/Example:alice?secret=\(secret)", "unknown type"),
        ("otpauth://Example:alice?secret=\(secret)", "type"),
        ("otpauth://totp/Example:alice?issuer=Example", "missing secret"),
        ("otpauth://totp/Example:alice?secret=&issuer=Example", "missing secret"),
        ("otpauth://totp/Example:alice?secret=\(secret)8", "not valid base32"),
        ("otpauth://totp/Example:alice?secret=\(secret.dropLast(2))", "not valid base32"),
        ("otpauth://totp/Example:alice?secret=\(secret)&issuer=Other", "issuer in the label differs"),
        ("otpauth://totp/Example:alice?secret=\(secret)&digits=5", "digits"),
        ("otpauth://totp/Example:alice?secret=\(secret)&digits=9", "digits"),
        ("otpauth://totp/Example:alice?secret=\(secret)&digits=six", "digits"),
        ("otpauth://totp/Example:alice?secret=\(secret)&algorithm=MD5", "unknown algorithm"),
        ("otpauth://totp/Example:alice?secret=\(secret)&period=0", "period"),
        ("otpauth://totp/Example:alice?secret=\(secret)&period=-30", "period"),
        ("otpauth://totp/Example:alice?secret=\(secret)&period=30s", "period"),
        ("otpauth://totp/Example:alice?secret=\(secret)&period=301", "period"),
        ("otpauth://hotp/Example:alice?secret=\(secret)", "without counter"),
        ("otpauth://hotp/Example:alice?secret=\(secret)&counter=-1", "counter"),
        ("otpauth://totp/Example:?secret=\(secret)", "empty account"),
        ("otpauth://totp/?secret=\(secret)", "empty account"),
        ("otpauth://totp/Example:alice?secret=\(secret)&secret=\(secret)", "more than once"),
        ("otpauth://totp/Exa%2mple:alice?secret=\(secret)", "percent-encoding"),
    ])
    func rejects(text: String, reasonFragment: String) {
        #expect {
            try OTPAuthURI.parse(text)
        } throws: { error in
            guard case CoreError.invalidURI(let reason) = error else { return false }
            let message = String(describing: error)
            return reason.contains(reasonFragment) && !message.contains(Self.secret.prefix(16)) && !message.contains(text)
        }
    }
}
