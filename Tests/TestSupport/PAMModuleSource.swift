import Foundation

/// What pam/pam_twofold.c accepts, read from its source, so the tests that hold a second form of it
/// (the man page, `twofoldctl doctor`'s copy of the option check) to the module need no list of
/// their own.
public enum PAMModuleSource {
    /// The string literals `parse_option` compares an option with
    /// (`strncmp(a, "socket=", 7)`, `strcmp(a, "failmode=open")`, `strcmp(a, "debug")`).
    public static func optionLiterals() throws -> [String] {
        let source = try String(contentsOfFile: TestPaths.root + "/pam/pam_twofold.c", encoding: .utf8)
        guard let start = source.range(of: "static int parse_option("),
              let end = source.range(of: "\n}\n", range: start.upperBound..<source.endIndex) else {
            throw HarnessError("pam_twofold.c: no parse_option function found")
        }
        let body = String(source[start.upperBound..<end.lowerBound])
        let regex = try NSRegularExpression(pattern: #"strn?cmp\(\s*a\s*,\s*"([^"]+)""#)
        return regex.matches(in: body, range: NSRange(body.startIndex..., in: body)).compactMap {
            Range($0.range(at: 1), in: body).map { String(body[$0]) }
        }
    }
}
