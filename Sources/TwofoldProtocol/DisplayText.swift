/// Text that came from a client (a user name, PAM_RHOST, PAM_TTY, a service name, a reason built
/// from them), made safe to show on a terminal or write to a log: control characters, and the
/// invisible or reordering characters a spoofed line could hide behind, become visible escapes.
public enum DisplayText {
    /// `value` with C0 and C1 controls, DEL, and Unicode format characters (bidirectional
    /// overrides and isolates, zero-width characters, the BOM) escaped as `\xNN` or `\u{NNNN}`;
    /// a backslash is doubled so an escape cannot be forged. Printable text is unchanged.
    public static func escaped(_ value: String) -> String {
        guard value.unicodeScalars.contains(where: needsEscape) else { return value }
        var out = ""
        out.unicodeScalars.reserveCapacity(value.unicodeScalars.count + 8)
        for scalar in value.unicodeScalars {
            if scalar == "\\" {
                out += "\\\\"
            } else if needsEscape(scalar) {
                out += scalar.value < 0x100 ? "\\x" + hex(scalar.value, width: 2) : "\\u{" + hex(scalar.value, width: 4) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether the scalar must not reach a terminal as it is.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x5C { return true }
        switch v {
        case 0x061C, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF, 0xFFF9...0xFFFB: return true
        default: return false
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
