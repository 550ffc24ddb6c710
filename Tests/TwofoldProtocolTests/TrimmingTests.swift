import Testing
import TwofoldProtocol

@Suite struct TrimmingTests {
    /// The form `trimmingSpaces` replaced: the same characters dropped, at any cost.
    static func reference(_ text: String) -> String {
        String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    @Test(arguments: [
        "", " ", "\t\n", "\r\n", "alice", "  alice  ", "\talice otpauth://totp/x?secret=AB\r\n",
        "a b\tc", "\u{00A0}bob\u{3000}", " \u{0301}x\u{0301} ", "👩‍💻 ", " é\n", "x\u{2028}",
    ])
    func dropsWhiteSpaceAtEitherEndAsTheCharacterFormDid(_ text: String) {
        #expect(text.trimmingSpaces() == Self.reference(text))
        #expect(text[...].trimmingSpaces() == Self.reference(text))
    }

    @Test func keepsWhatIsInside() {
        #expect("  user  factor\totpauth://x \n".trimmingSpaces() == "user  factor\totpauth://x")
        #expect(" \t\r\n ".trimmingSpaces() == "")
    }
}
