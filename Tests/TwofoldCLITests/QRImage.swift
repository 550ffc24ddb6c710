import Foundation
import TwofoldQR
import TwofoldTestSupport

/// Reading a QR code back: from the half-block text twofoldctl prints to a module matrix, from a
/// matrix to a PGM image, and from the image to its text with the real `zbarimg`.
enum QRImage {
    /// Lines of a half-block rendering: every character one of "█▀▄ ", at least 10 wide.
    static func blockLines(in text: String) -> [String] {
        var lines: [String] = []
        var current: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let isBlock = line.count >= 10 && line.allSatisfy { "█▀▄ ".contains($0) } && line.contains(where: { $0 != " " })
            if isBlock {
                current.append(line)
            } else if !current.isEmpty {
                if current.count > lines.count { lines = current }
                current = []
            }
        }
        if current.count > lines.count { lines = current }
        return lines
    }

    /// The cells of a half-block text: `true` where a block paints the half cell (two rows per line).
    static func paintedCells(_ lines: [String]) -> [[Bool]] {
        var rows: [[Bool]] = []
        for line in lines {
            var top: [Bool] = [], bottom: [Bool] = []
            for character in line {
                switch character {
                case "█": top.append(true); bottom.append(true)
                case "▀": top.append(true); bottom.append(false)
                case "▄": top.append(false); bottom.append(true)
                default: top.append(false); bottom.append(false)
                }
            }
            rows.append(top)
            rows.append(bottom)
        }
        return rows
    }

    /// The module matrix in a half-block text. `paintedIsLight`: the blocks paint light modules
    /// (twofoldctl's default) or dark ones (inverted). The quiet zone is found, not assumed: the
    /// symbol starts at the first dark module (the top-left finder pattern) and is as wide as the
    /// text minus the same margin on the right.
    static func matrix(fromHalfBlocks text: String, paintedIsLight: Bool = true) throws -> QRMatrix {
        let lines = blockLines(in: text)
        guard !lines.isEmpty else { throw HarnessError("no half-block QR code in:\n\(text)") }
        let cells = paintedCells(lines)
        let width = cells[0].count
        guard cells.allSatisfy({ $0.count == width }) else { throw HarnessError("QR lines differ in width") }
        func dark(_ x: Int, _ y: Int) -> Bool { cells[y][x] != paintedIsLight }
        // The painted frame (the quiet zone) surrounds the symbol; outside the text all is unknown.
        guard let top = (0..<cells.count).first(where: { y in (0..<width).contains { dark($0, y) } && !(0..<width).allSatisfy { dark($0, y) } }),
              let left = (0..<width).first(where: { x in (top..<min(top + 7, cells.count)).allSatisfy { dark(x, $0) } })
        else { throw HarnessError("no finder pattern found") }
        let size = width - 2 * left
        guard size >= 21, (size - 17) % 4 == 0, top + size <= cells.count else {
            throw HarnessError("implausible QR size \(size) (left margin \(left), top \(top))")
        }
        var modules: [Bool] = []
        for y in 0..<size { for x in 0..<size { modules.append(dark(left + x, top + y)) } }
        return QRMatrix(size: size, modules: modules)
    }

    /// A binary PGM: `scale` pixels per module and a white quiet zone of `quietZone` modules.
    static func pgm(_ matrix: QRMatrix, scale: Int = 4, quietZone: Int = 4) -> [UInt8] {
        let side = (matrix.size + 2 * quietZone) * scale
        var pixels = [UInt8](repeating: 255, count: side * side)
        for y in 0..<matrix.size {
            for x in 0..<matrix.size where matrix.isDark(x: x, y: y) {
                for dy in 0..<scale {
                    let row = ((y + quietZone) * scale + dy) * side
                    for dx in 0..<scale { pixels[row + (x + quietZone) * scale + dx] = 0 }
                }
            }
        }
        return Array("P5\n\(side) \(side)\n255\n".utf8) + pixels
    }

    /// What a light-on-dark terminal shows for a half-block text: painted half cells in the light
    /// text colour, everything else (and a margin around) in the dark background colour. Each half
    /// cell is `scale` pixels square.
    static func terminalPGM(_ text: String, scale: Int = 4, margin: Int = 6) throws -> [UInt8] {
        let lines = blockLines(in: text)
        guard !lines.isEmpty else { throw HarnessError("no half-block QR code in:\n\(text)") }
        let cells = paintedCells(lines)
        let width = (cells[0].count + 2 * margin) * scale, height = (cells.count + 2 * margin) * scale
        var pixels = [UInt8](repeating: 0, count: width * height)
        for (y, row) in cells.enumerated() {
            for (x, painted) in row.enumerated() where painted {
                for dy in 0..<scale {
                    let base = ((y + margin) * scale + dy) * width + (x + margin) * scale
                    for dx in 0..<scale { pixels[base + dx] = 255 }
                }
            }
        }
        return Array("P5\n\(width) \(height)\n255\n".utf8) + pixels
    }

    /// Decodes an image with `zbarimg --raw -q`; the text, or nil when nothing was found.
    static func zbar(_ image: [UInt8]) throws -> String? {
        let directory = try makeTemporaryDirectory("tfqr")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/code.pgm"
        try Data(image).write(to: URL(fileURLWithPath: path))
        let result = try CLI.runProgram(["/usr/bin/zbarimg", "--raw", "-q", path])
        guard result.status == 0 else { return nil }
        var text = result.stdout
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
