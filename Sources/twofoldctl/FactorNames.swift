/// Factor names as twofoldd accepts them (TwofoldCore's `FactorName`, repeated here from before
/// twofoldctl linked the core; a CLI test checks that the two agree on every case).
enum FactorNames {
    /// The name twofoldd gives a first enrollment, and the base of "app-2", "app-3", ….
    static let first = "app"
    /// The name twofoldd gives an import unless told.
    static let imported = "imported"
    /// The recovery set's name in listings; no factor may take it.
    static let recovery = "recovery"
    static let maxLength = 32
    static let rule = "1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit, and not 'recovery'"

    static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= maxLength, name != recovery else { return false }
        let allowed: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
        return allowed(first) && first != 0x2e && first != 0x5f && first != 0x2d && name.utf8.allSatisfy(allowed)
    }

    /// The name twofoldd picks when none is given: "app" if free, else "app-2", "app-3", ….
    static func next(taken: Set<String>) -> String {
        guard taken.contains(first) else { return first }
        var n = 2
        while taken.contains("\(first)-\(n)") { n += 1 }
        return "\(first)-\(n)"
    }

    /// `names` as `'a', 'b'` for messages.
    static func quoted(_ names: [String]) -> String {
        names.map { "'\($0)'" }.joined(separator: ", ")
    }
}
