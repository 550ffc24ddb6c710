import Foundation
import Testing
import TwofoldCore
import TwofoldQR

/// TwofoldQR on its own: the matrix, both renderings, and a round trip through the real zbarimg.
@Suite struct QRCodeTests {
    static let samples: [String] = [
        "otpauth://totp/Twofold:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Twofold&algorithm=SHA1&digits=6&period=30",
        "hello",
        "otpauth://totp/Example%20Corp:j%C3%BCrgen%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp&algorithm=SHA512&digits=8&period=60",
        String(repeating: "0123456789abcdef", count: 20),
    ]

    @Test func versionOneMatrixHasFinderPatterns() throws {
        let matrix = try QRCode.encode("hello")
        #expect(matrix.size == 21)
        #expect(matrix.modules.count == 21 * 21)
        // The three finder patterns: a dark 7×7 ring with a dark 3×3 centre.
        for (ox, oy) in [(0, 0), (14, 0), (0, 14)] {
            for i in 0..<7 {
                #expect(matrix.isDark(x: ox + i, y: oy))
                #expect(matrix.isDark(x: ox + i, y: oy + 6))
                #expect(matrix.isDark(x: ox, y: oy + i))
                #expect(matrix.isDark(x: ox + 6, y: oy + i))
            }
            #expect(!matrix.isDark(x: ox + 1, y: oy + 1))
            #expect(matrix.isDark(x: ox + 3, y: oy + 3))
        }
        // Outside the symbol is the (light) quiet zone.
        #expect(!matrix.isDark(x: -1, y: 0))
        #expect(!matrix.isDark(x: 21, y: 21))
    }

    @Test func longerTextsNeedLargerVersions() throws {
        let small = try QRCode.encode("hi")
        let uri = try QRCode.encode(Self.samples[0])
        #expect(small.size == 21)
        #expect(uri.size > small.size)
        #expect((uri.size - 17) % 4 == 0)
    }

    @Test func encodingIsCaseSensitiveAndDeterministic() throws {
        #expect(try QRCode.encode("ABC") == QRCode.encode("ABC"))
        #expect(try QRCode.encode("abc") != QRCode.encode("ABC"))
    }

    @Test func refusesWhatCannotBeEncoded() {
        #expect(throws: QRError.emptyText) { try QRCode.encode("") }
        #expect(throws: QRError.containsNUL) { try QRCode.encode("a\u{0}b") }
        #expect(throws: QRError.tooLong(bytes: 4000)) { try QRCode.encode(String(repeating: "x", count: 4000)) }
    }

    @Test func utf8RenderingShape() throws {
        let matrix = try QRCode.encode("hello")
        let text = matrix.renderUTF8()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let total = 21 + 2 * QRMatrix.defaultQuietZone
        #expect(lines.count == (total + 1) / 2)
        #expect(lines.allSatisfy { $0.count == total })
        #expect(text.allSatisfy { "█▀▄ \n".contains($0) })
        // Default: the blocks paint the light quiet zone, so the first line is all full blocks.
        #expect(lines[0] == Substring(String(repeating: "█", count: total)))
        // Inverted: the quiet zone is left blank.
        let inverted = matrix.renderUTF8(invert: true)
        #expect(inverted.split(separator: "\n")[0].allSatisfy { $0 == " " })
        // A wider quiet zone.
        let wide = matrix.renderUTF8(quietZone: 4)
        #expect(wide.split(separator: "\n")[0].count == 21 + 8)
    }

    @Test(arguments: samples)
    func utf8RoundTripThroughZbar(text: String) throws {
        let matrix = try QRCode.encode(text)
        let rendered = matrix.renderUTF8()
        let parsed = try QRImage.matrix(fromHalfBlocks: rendered)
        #expect(parsed == matrix)
        #expect(try QRImage.zbar(QRImage.pgm(parsed)) == text)
        // As a light-on-dark terminal shows it: only the printed 2-module quiet zone separates the
        // code from the dark background.
        #expect(try QRImage.zbar(QRImage.terminalPGM(rendered)) == text)
    }

    @Test func invertedRoundTrip() throws {
        let text = Self.samples[0]
        let matrix = try QRCode.encode(text)
        let parsed = try QRImage.matrix(fromHalfBlocks: matrix.renderUTF8(invert: true), paintedIsLight: false)
        #expect(parsed == matrix)
        #expect(try QRImage.zbar(QRImage.pgm(parsed)) == text)
    }

    @Test func ansiRenderingRoundTrip() throws {
        let text = Self.samples[0]
        let matrix = try QRCode.encode(text)
        let rendered = matrix.renderANSI()
        let quiet = QRMatrix.defaultQuietZone
        let total = matrix.size + 2 * quiet
        let lines = rendered.split(separator: "\n")
        #expect(lines.count == total)
        // Parse: ESC[40m switches to dark, ESC[47m to light, every "  " is one module, ESC[0m ends the line.
        var modules: [[Bool]] = []
        for line in lines {
            #expect(line.hasSuffix("\u{1B}[0m"))
            var row: [Bool] = []
            var dark = false
            var rest = Substring(line)
            while !rest.isEmpty {
                if rest.hasPrefix("\u{1B}[40m") { dark = true; rest = rest.dropFirst(5) }
                else if rest.hasPrefix("\u{1B}[47m") { dark = false; rest = rest.dropFirst(5) }
                else if rest.hasPrefix("\u{1B}[0m") { rest = rest.dropFirst(4) }
                else if rest.hasPrefix("  ") { row.append(dark); rest = rest.dropFirst(2) }
                else { Issue.record("unexpected text in ANSI rendering: \(rest.prefix(8).debugDescription)"); break }
            }
            modules.append(row)
        }
        #expect(modules.allSatisfy { $0.count == total })
        let inner = modules[quiet..<(quiet + matrix.size)].flatMap { $0[quiet..<(quiet + matrix.size)] }
        #expect(QRMatrix(size: matrix.size, modules: Array(inner)) == matrix)
        #expect(modules[0].allSatisfy { !$0 })
        #expect(try QRImage.zbar(QRImage.pgm(matrix)) == text)
    }
}
