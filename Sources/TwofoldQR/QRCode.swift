import CQRencode

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// QR codes for enrollment: `twofoldctl enroll` prints one, and the daemon shows one as PAM info
/// text during enroll-at-login.
///
///     let matrix = try QRCode.encode(uri)
///     print(matrix.renderUTF8())
///
/// Encoding uses libqrencode with error-correction level M, 8-bit mode, case-sensitive, and the
/// smallest version that fits.
public enum QRCode {
    /// Encodes `text` (UTF-8 bytes, 8-bit mode, level M) into a module matrix.
    /// Throws `QRError` for an empty text, a text with a NUL byte, or one too long for any QR version.
    public static func encode(_ text: String) throws(QRError) -> QRMatrix {
        guard !text.isEmpty else { throw .emptyText }
        guard !text.utf8.contains(0) else { throw .containsNUL }
        errno = 0
        guard let code = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1) else {
            let code = errno
            if code == ERANGE { throw .tooLong(bytes: text.utf8.count) }
            throw .encodingFailed(errno: code)
        }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        var modules = [Bool](repeating: false, count: width * width)
        // Each byte of `data` is one module; its least significant bit is 1 for a dark module.
        for index in 0 ..< width * width {
            modules[index] = code.pointee.data[index] & 1 == 1
        }
        return QRMatrix(size: width, modules: modules)
    }
}

/// Why a text could not be encoded.
public enum QRError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyText
    case containsNUL
    /// More bytes than the largest QR version holds at level M.
    case tooLong(bytes: Int)
    /// libqrencode failed otherwise (errno).
    case encodingFailed(errno: Int32)

    public var description: String {
        switch self {
        case .emptyText: return "cannot encode an empty text as a QR code"
        case .containsNUL: return "cannot encode a text containing a NUL byte as a QR code"
        case .tooLong(let bytes): return "\(bytes) bytes is too long for a QR code"
        case .encodingFailed(let code): return "QR encoding failed: \(String(cString: strerror(code)))"
        }
    }
}

/// A square QR symbol: `size` × `size` modules, row by row, `true` for dark. It holds no quiet zone;
/// the renderers add one.
public struct QRMatrix: Equatable, Sendable {
    /// Modules per side (21 for version 1, + 4 per version).
    public let size: Int
    /// Row-major, `true` for a dark module.
    public let modules: [Bool]

    /// The quiet zone (light border, in modules) the renderers add by default. The standard asks for
    /// 4; phone cameras read 2 reliably and it keeps the code small in a terminal.
    public static let defaultQuietZone = 2

    public init(size: Int, modules: [Bool]) {
        precondition(size > 0 && modules.count == size * size, "a QR matrix needs size × size modules")
        self.size = size
        self.modules = modules
    }

    /// Whether the module at column `x`, row `y` is dark. Coordinates outside the symbol (the quiet
    /// zone) are light.
    public func isDark(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < size, y < size else { return false }
        return modules[y * size + x]
    }

    /// The text renderings: two module rows per line with Unicode half blocks (`▀`, `▄`, `█`, space).
    ///
    /// A block character paints with the terminal's *foreground* (text) colour and leaves the
    /// *background* colour elsewhere. By default (`invert: false`) the blocks paint the **light**
    /// modules and the quiet zone, and a dark module is left as terminal background: on the usual
    /// terminal with light text on a dark background (the Linux console, most ssh sessions and
    /// terminal emulators' default dark themes) the phone sees dark modules on a light field, as a QR code
    /// must be. This is the convention of `qrencode -t UTF8`. On a terminal with dark text on a light
    /// background use `invert: true` (the blocks then paint the dark modules), or the ANSI rendering,
    /// which sets both colours itself.
    ///
    /// Every line has the same width, `size + 2 × quietZone` characters, and ends with "\n". When the
    /// total height is odd the last line's lower half is left unpainted (terminal background).
    public func renderUTF8(quietZone: Int = QRMatrix.defaultQuietZone, invert: Bool = false) -> String {
        let quiet = max(0, quietZone)
        let total = size + 2 * quiet
        var out = ""
        out.reserveCapacity((total + 1) * ((total + 1) / 2) * 3)
        var row = 0
        while row < total {
            for column in 0 ..< total {
                let top = painted(x: column - quiet, y: row - quiet, invert: invert)
                let bottom = row + 1 < total ? painted(x: column - quiet, y: row + 1 - quiet, invert: invert) : false
                switch (top, bottom) {
                case (true, true): out += "█"
                case (true, false): out += "▀"
                case (false, true): out += "▄"
                case (false, false): out += " "
                }
            }
            out += "\n"
            row += 2
        }
        return out
    }

    /// One module row per line, two spaces per module, with ANSI background colours: white (`ESC[47m`)
    /// for light modules and the quiet zone, black (`ESC[40m`) for dark ones, reset (`ESC[0m`) at each
    /// line end. It reads dark-on-light in any terminal theme, but needs a terminal that shows
    /// colours (not PAM prompts over every client).
    public func renderANSI(quietZone: Int = QRMatrix.defaultQuietZone) -> String {
        let quiet = max(0, quietZone)
        let total = size + 2 * quiet
        let light = "\u{1B}[47m", dark = "\u{1B}[40m", reset = "\u{1B}[0m"
        var out = ""
        for row in 0 ..< total {
            var current: Bool?
            for column in 0 ..< total {
                let isDark = isDark(x: column - quiet, y: row - quiet)
                if current != isDark {
                    out += isDark ? dark : light
                    current = isDark
                }
                out += "  "
            }
            out += reset + "\n"
        }
        return out
    }

    /// Whether a half block paints this module: the light ones by default, the dark ones inverted.
    private func painted(x: Int, y: Int, invert: Bool) -> Bool {
        isDark(x: x, y: y) == invert
    }
}
