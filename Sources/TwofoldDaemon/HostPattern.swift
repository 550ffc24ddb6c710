/// A host name or a pattern of them, as the policy names hosts: `bastion-1`, `bastion-*`,
/// `web-??.example.com`. `*` stands for any characters (none included), `?` for one; host names
/// compare without regard to case, as DNS does.
public enum HostPattern {
    /// Whether `text` may name hosts in the policy: 1 to 253 characters of letters, digits, '.', '-',
    /// '_', '*' and '?'.
    public static func isValid(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 253
            && text.utf8.allSatisfy { isHostByte($0) || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
    }

    public static func isPattern(_ text: String) -> Bool { text.contains("*") || text.contains("?") }

    /// Whether `pattern` matches all of `host`.
    public static func matches(_ pattern: String, _ host: String) -> Bool {
        let p = Array(pattern.lowercased().utf8), h = Array(host.lowercased().utf8)
        // Iterative glob with one backtrack point: linear in practice, no recursion on hostile input.
        var (pi, hi, star, mark) = (0, 0, -1, 0)
        while hi < h.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == h[hi]) {
                pi += 1
                hi += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = hi
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                hi = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    /// The entry of `table` that decides for `host`: the host's own name, else the most specific
    /// pattern that matches it (the longest; equal lengths by name, so the answer never depends on
    /// a dictionary's order).
    public static func lookup<Value>(_ host: String, in table: [String: Value]) -> (key: String, value: Value)? {
        if let exact = table[host] { return (host, exact) }
        if let folded = table.first(where: { !isPattern($0.key) && $0.key.lowercased() == host.lowercased() }) { return (folded.key, folded.value) }
        let candidates = table.filter { isPattern($0.key) && matches($0.key, host) }
        guard let best = candidates.max(by: { ($0.key.count, $1.key) < ($1.key.count, $0.key) }) else { return nil }
        return (best.key, best.value)
    }

    /// Whether any of `patterns` matches `host`.
    public static func any(_ patterns: [String], matches host: String) -> Bool {
        patterns.contains { matches($0, host) }
    }

    private static func isHostByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x2D || b == 0x5F
    }
}
