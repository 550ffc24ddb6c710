import Foundation

/// Users' own authorized_keys files: sshd reads them before it asks twofoldctl, so for the users
/// who must use the keys Twofold serves (hardware keys, revoked in one place) the file must be
/// `none`: globally, or in a `Match Group` block. `sshd -T` shows only the settings outside Match
/// blocks, so doctor finds the blocks that set `AuthorizedKeysFile none` in the config (and what it
/// Includes), then asks sshd for the effective value of one member of each block
/// (`sshd -T -C user=MEMBER,host=…,addr=…` evaluates the Match blocks as for that connection).
extension SSHKeysCheck {
    func authorizedKeysFileFinding() -> Finding {
        let subject = "\(configName): AuthorizedKeysFile"
        let global = settings.values["authorizedkeysfile"] ?? ".ssh/authorized_keys .ssh/authorized_keys2"
        if global == "none" {
            return .ok("sshkeys.authorized-keys-file", subject: subject, "none: sshd reads no user's own file; only the keys twofoldd serves count")
        }
        let blocks = SSHDMatchScan(file: configName).settings(["authorizedkeysfile"]).filter { $0.words.dropFirst().first?.lowercased() == "none" }
        guard !blocks.isEmpty else {
            return .warning("sshkeys.authorized-keys-file", subject: subject,
                            "\(global) for every user: sshd reads users' own files first, so a key put there works without Twofold (any type, and still after it is revoked here)",
                            fix: "for the users who must use hardware keys, end \(configName) with `Match Group ssh-hardware-keys` and under it `AuthorizedKeysFile none`, then `systemctl reload ssh`")
        }
        let results = blocks.map(confirm)
        if let failed = results.first(where: { !$0.confirmed }) {
            return .warning("sshkeys.authorized-keys-file", subject: subject, failed.text,
                            fix: "check the block with `\((sshdArgv + ["-C", "user=USER,host=localhost,addr=127.0.0.1"]).joined(separator: " "))`")
        }
        return .ok("sshkeys.authorized-keys-file", subject: subject,
                   "\(global) outside Match blocks; " + results.map(\.text).joined(separator: "; "))
    }

    /// Whether `sshd -T -C` gives `none` for one user the block names (a member of its group).
    private func confirm(_ block: SSHDMatchScan.Setting) -> (confirmed: Bool, text: String) {
        let place = "`AuthorizedKeysFile none` in `\(block.block)` (\(block.location))"
        guard let user = Self.someUser(matchedBy: block.block) else {
            return (true, place + ", not confirmed: doctor found no user it names")
        }
        let argv = sshdArgv + ["-C", "user=\(user),host=localhost,addr=127.0.0.1"]
        guard let output = try? Subprocess.run(argv), output.status == 0, !output.timedOut else {
            return (false, place + ": `\(argv.joined(separator: " "))` failed, so it was not confirmed")
        }
        let value = SSHDSettings(output: output.stdout).values["authorizedkeysfile"] ?? "?"
        guard value == "none" else {
            return (false, place + " does not apply to \(user): sshd reads \(value) for them")
        }
        return (true, place + ", confirmed for \(user)")
    }

    /// A user `Match User a,b` or `Match Group g` names: the first user, or the first member of the
    /// first group that has members listed in the group database (primary members are not listed).
    static func someUser(matchedBy match: String) -> String? {
        let words = match.split(separator: " ").map(String.init)
        var index = 1
        while index + 1 < words.count {
            let criterion = words[index].lowercased(), names = words[index + 1].split(separator: ",").map(String.init)
            if criterion == "user", let user = names.first(where: { !$0.contains("*") && !$0.hasPrefix("!") }) { return user }
            if criterion == "group" {
                for name in names where !name.contains("*") && !name.hasPrefix("!") {
                    if let group = getgrnam(name), let members = group.pointee.gr_mem, let first = members[0] { return String(cString: first) }
                }
            }
            index += 2
        }
        return nil
    }
}
