import Foundation

/// `sshd -T` without `-C` shows the settings outside every Match block. This finds the Match
/// blocks (in the config file and the files it Includes) that change a setting the code depends on.
struct SSHDMatchScan {
    let file: String

    static let keywords: Set<String> = [
        "authenticationmethods", "passwordauthentication", "kbdinteractiveauthentication",
        "challengeresponseauthentication", "pubkeyauthentication",
    ]

    func findings() -> [Finding] {
        var findings: [Finding] = []
        var seen: Set<String> = []
        scan(file, depth: 0, seen: &seen, into: &findings)
        return findings
    }

    private func scan(_ path: String, depth: Int, seen: inout Set<String>, into findings: inout [Finding]) {
        guard depth < 16, !seen.contains(path), let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        seen.insert(path)
        var match: (line: Int, text: String)?
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "=" }).map(String.init)
            guard let keyword = words.first?.lowercased(), !keyword.hasPrefix("#") else { continue }
            if keyword == "match" {
                let all = words.count == 2 && words[1].lowercased() == "all"
                match = all ? nil : (index + 1, words.joined(separator: " "))
            } else if keyword == "include" {
                for pattern in words.dropFirst() { for included in expand(pattern) { scan(included, depth: depth + 1, seen: &seen, into: &findings) } }
            } else if let block = match, Self.keywords.contains(keyword) {
                findings.append(.warning("sshd.match", subject: "\(path):\(index + 1)",
                                         "`\(words.joined(separator: " "))` inside `\(block.text)` (line \(block.line)) changes how matching connections log in; doctor checked the settings outside Match blocks",
                                         fix: "check the matching connections with `sshd -T -C user=USER,host=HOST,addr=ADDR\(path == SSHDCheck.defaultConfig ? "" : " -f \(file)")`, and keep `AuthenticationMethods publickey,keyboard-interactive` and `PasswordAuthentication no` there"))
            }
        }
    }

    /// An Include pattern's files (relative to /etc/ssh, as sshd reads them), sorted.
    private func expand(_ pattern: String) -> [String] {
        let full = pattern.hasPrefix("/") || pattern.hasPrefix("~") ? pattern : "/etc/ssh/" + pattern
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(full, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted()
    }
}
