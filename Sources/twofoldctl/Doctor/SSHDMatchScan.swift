import Foundation

/// `sshd -T` without `-C` shows the settings outside every Match block. This walks the Match
/// blocks (in the config file and the files it Includes): the ones that change a setting the code
/// depends on are findings; `settings(_:)` gives any keyword's values inside Match blocks.
struct SSHDMatchScan {
    let file: String

    static let keywords: Set<String> = [
        "authenticationmethods", "passwordauthentication", "kbdinteractiveauthentication",
        "challengeresponseauthentication", "pubkeyauthentication",
    ]

    /// A setting inside a Match block: where, the block's line (`Match Group ssh-hw`), the words.
    struct Setting {
        var location: String
        var block: String
        var blockLine: Int
        var words: [String]
    }

    func findings() -> [Finding] {
        settings(Self.keywords).map { setting in
            .warning("sshd.match", subject: setting.location,
                     "`\(setting.words.joined(separator: " "))` inside `\(setting.block)` (line \(setting.blockLine)) changes how matching connections log in; doctor checked the settings outside Match blocks",
                     fix: "check the matching connections with `sshd -T -C user=USER,host=HOST,addr=ADDR\(file == SSHDCheck.defaultConfig ? "" : " -f \(file)")`, and keep `AuthenticationMethods publickey,keyboard-interactive` and `PasswordAuthentication no` there")
        }
    }

    /// The settings of `keywords` (lower case) inside Match blocks other than `Match all`, in file order.
    func settings(_ keywords: Set<String>) -> [Setting] {
        var found: [Setting] = []
        var seen: Set<String> = []
        scan(file, depth: 0, keywords: keywords, seen: &seen, into: &found)
        return found
    }

    private func scan(_ path: String, depth: Int, keywords: Set<String>, seen: inout Set<String>, into found: inout [Setting]) {
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
                for pattern in words.dropFirst() {
                    for included in expand(pattern) { scan(included, depth: depth + 1, keywords: keywords, seen: &seen, into: &found) }
                }
            } else if let block = match, keywords.contains(keyword) {
                found.append(Setting(location: "\(path):\(index + 1)", block: block.text, blockLine: block.line, words: words))
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
