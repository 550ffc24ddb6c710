import Testing
import TwofoldCore
import TwofoldCrypto

@Suite("Base32")
struct Base32Tests {
    static let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    static func padded(_ encoded: String) -> String {
        encoded + String(repeating: "=", count: (8 - encoded.count % 8) % 8)
    }

    @Test("random round trips, lengths 0 to 64")
    func roundTrips() throws {
        var rng = SeededGenerator()
        for length in 0...64 {
            for _ in 0..<4 {
                let bytes = rng.bytes(length)
                let encoded = Base32.encode(bytes)
                #expect(encoded.count == (length * 8 + 4) / 5, "seed \(rng.seed)")
                #expect(encoded.allSatisfy { Self.alphabet.contains($0) }, "seed \(rng.seed)")
                #expect(try Base32.decode(encoded) == bytes, "seed \(rng.seed)")
            }
        }
    }

    @Test("accepts what people type: lower case, spaces, dashes, with or without padding")
    func typedForms() throws {
        var rng = SeededGenerator()
        for _ in 0..<200 {
            let bytes = rng.bytes(Int.random(in: 1...40, using: &rng))
            let encoded = Base32.encode(bytes)
            var typed = ""
            for character in encoded {
                if Bool.random(using: &rng) { typed += String(character).lowercased() } else { typed.append(character) }
                if Int.random(in: 0..<5, using: &rng) == 0 { typed += [" ", "-", "  ", " - "].randomElement(using: &rng)! }
            }
            let withPadding = Self.padded(typed.filter { $0 != " " && $0 != "-" })
            #expect(try Base32.decode(typed) == bytes, "seed \(rng.seed)")
            #expect(try Base32.decode(" " + typed + " ") == bytes, "seed \(rng.seed)")
            #expect(try Base32.decode(withPadding) == bytes, "seed \(rng.seed)")
            #expect(try Base32.decode(Base32.grouped(encoded)) == bytes, "seed \(rng.seed)")
            #expect(try Base32.decode(Base32.grouped(encoded).lowercased()) == bytes, "seed \(rng.seed)")
        }
    }

    @Test("rejects characters outside the alphabet without echoing the input", arguments: ["0", "1", "8", "9", "!", "=x", "é", "_", "+", "/"])
    func rejectsInvalidCharacters(bad: String) {
        var rng = SeededGenerator()
        for _ in 0..<20 {
            let encoded = Base32.encode(rng.bytes(Int.random(in: 10...32, using: &rng)))
            let position = Int.random(in: 0...encoded.count, using: &rng)
            var text = encoded
            text.insert(contentsOf: bad, at: text.index(text.startIndex, offsetBy: position))
            do {
                _ = try Base32.decode(text)
                Issue.record("accepted an invalid character; seed \(rng.seed)")
            } catch {
                guard case CoreError.invalidBase32(let reason) = error else {
                    Issue.record("unexpected error type \(type(of: error))")
                    continue
                }
                let message = String(describing: error)
                #expect(!message.contains(text) && !message.contains(encoded) && !reason.contains(encoded.prefix(8)), "seed \(rng.seed)")
                if bad != "=x" { #expect(reason.contains("position \(position + 1)"), "seed \(rng.seed)") }
            }
        }
    }

    @Test("rejects lengths that are not whole bytes", arguments: [1, 3, 6, 9, 11, 14, 17, 19, 22])
    func rejectsImpossibleLengths(symbols: Int) {
        var rng = SeededGenerator()
        let text = String((0..<symbols).map { _ in Array(Self.alphabet).randomElement(using: &rng)! })
        #expect {
            try Base32.decode(text)
        } throws: { error in
            guard case CoreError.invalidBase32(let reason) = error else { return false }
            // (A text of one or two symbols may well occur in any message, e.g. "3" in "base32".)
            return reason.contains("length \(symbols)") && (symbols < 3 || !String(describing: error).contains(text))
        }
        #expect(throws: CoreError.self) { try Base32.decode(Self.padded(text)) }
    }

    @Test("rejects misplaced or wrong padding")
    func rejectsBadPadding() throws {
        var rng = SeededGenerator()
        let encoded = Base32.encode(rng.bytes(11))   // 18 symbols: needs 6 '='
        #expect(try Base32.decode(encoded + "======") == Base32.decode(encoded))
        for text in [encoded + "=", encoded + "===", encoded + "========", "MZ=XQ", Self.padded(encoded) + "A", "========"] {
            #expect(throws: CoreError.self, "seed \(rng.seed)") { try Base32.decode(text) }
        }
    }

    @Test("grouped inserts a space every n characters", arguments: [1, 3, 4, 5, 8])
    func grouped(size: Int) {
        var rng = SeededGenerator()
        for length in 0...40 {
            let encoded = Base32.encode(rng.bytes(length))
            let groups = Base32.grouped(encoded, size: size).split(separator: " ", omittingEmptySubsequences: false)
            #expect(groups.joined() == encoded)
            if !encoded.isEmpty {
                #expect(groups.dropLast().allSatisfy { $0.count == size })
                #expect((1...size).contains(groups.last!.count))
            }
        }
    }

    @Test("generated secrets have the requested length and differ")
    func secrets() throws {
        let a = try OTPSecret.generate()
        let b = try OTPSecret.generate()
        #expect(a.count == OTPSecret.defaultByteCount)
        #expect(!a.constantTimeEquals(b))
        #expect(try OTPSecret.generate(byteCount: 32).count == 32)
        #expect(throws: CoreError.self) { try OTPSecret.generate(byteCount: 8) }
    }
}
