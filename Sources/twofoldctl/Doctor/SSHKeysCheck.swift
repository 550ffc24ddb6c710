import Foundation
import TwofoldProtocol
import TwofoldSystemd

/// The SSH keys section: whether this host's sshd asks twofoldctl for users' keys, and asks it the
/// way twofoldd answers (`sshd -T`'s AuthorizedKeysCommand and AuthorizedKeysCommandUser against
/// twofoldd's authorized_keys_user), PubkeyAuthOptions when the policy wants verify-required, and
/// whether users' own authorized_keys files still count for the users who must use hardware keys.
struct SSHKeysCheck {
    /// sshd's effective settings outside Match blocks (`sshd -T`).
    let settings: SSHDSettings
    /// `sshd -T` with -f FILE when given: run again with -C for one user of a Match block.
    let sshdArgv: [String]
    let configName: String
    /// Whether the keys twofoldd serves on this host carry verify-required (the rule the chain
    /// gives this host; nil: not asked, or a relay, which holds no policy).
    let verifyRequired: Bool?
    /// twofoldd's authorized_keys_user: .some(nil) when twofoldd.conf sets none; nil when unknown.
    let keysUser: String??

    func findings() -> [Finding] {
        let command = settings.values["authorizedkeyscommand"] ?? "none"
        let words = command.split(separator: " ").map(String.init)
        guard let program = words.first, command != "none", (program as NSString).lastPathComponent == "twofoldctl" else {
            return [.ok("sshkeys.command", subject: "\(configName): AuthorizedKeysCommand",
                        command == "none" ? "not set: sshd accepts no key registered with 'twofoldctl ssh-key' on this host"
                            : "`\(command)`: sshd asks another program for keys, not twofoldctl")]
        }
        var findings = [commandFinding(words)]
        findings.append(commandUserFinding())
        if let verify = verifyRequiredFinding() { findings.append(verify) }
        findings.append(authorizedKeysFileFinding())
        return findings
    }

    /// `twofoldctl authorized-keys %u` (options allowed), at a path sshd agrees to run.
    private func commandFinding(_ words: [String]) -> Finding {
        let subject = "\(configName): AuthorizedKeysCommand"
        let command = words.joined(separator: " ")
        let arguments = words.dropFirst()
        guard arguments.contains("authorized-keys"), arguments.last == "%u" else {
            return .error("sshkeys.command", subject: subject,
                          "`\(command)` does not ask twofoldctl for the user's keys: sshd accepts none of them",
                          fix: "`AuthorizedKeysCommand /usr/bin/twofoldctl authorized-keys %u` in \(configName), then `systemctl reload ssh`")
        }
        if let unsafe = Self.unsafePath(words[0]) {
            return .error("sshkeys.command", subject: subject, "sshd refuses to run \(words[0]): \(unsafe), so it accepts no key from it",
                          fix: "install twofoldctl owned by root and writable only by root (every directory above it too), at an absolute path")
        }
        return .ok("sshkeys.command", subject: subject, "`\(command)`: sshd asks twofoldd for the keys of the user logging in")
    }

    /// Why sshd would refuse to run `path` (it must be absolute, and the file it resolves to and
    /// every directory above that owned by root and writable by no one else), or nil.
    static func unsafePath(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "the path is not absolute" }
        guard let resolved = realpath(path, nil) else { return "\(path) does not exist" }
        defer { free(resolved) }
        var current = String(cString: resolved)
        while true {
            var info = stat()
            guard stat(current, &info) == 0 else { return "\(current) does not exist" }
            if info.st_uid != 0 { return "\(current) is not owned by root" }
            if info.st_mode & 0o022 != 0 { return "\(current) is writable by its group or others" }
            if current == "/" { return nil }
            current = (current as NSString).deletingLastPathComponent
        }
    }

    /// The user sshd runs the command as must be the one twofoldd lets ask for keys (or root).
    private func commandUserFinding() -> Finding {
        let subject = "\(configName): AuthorizedKeysCommandUser"
        let fixUser = "`AuthorizedKeysCommandUser \((keysUser ?? nil) ?? "twofold-keys")` in \(configName)"
        guard let user = settings.values["authorizedkeyscommanduser"], user != "none", !user.isEmpty else {
            return .error("sshkeys.command-user", subject: subject, "not set: sshd refuses to run AuthorizedKeysCommand without it",
                          fix: fixUser + ", then `systemctl reload ssh`")
        }
        guard getpwnam(user) != nil else {
            return .error("sshkeys.command-user", subject: subject, "\(user) is no account on this host: sshd cannot run the command",
                          fix: "`useradd --system --no-create-home --shell /usr/sbin/nologin \(user)`")
        }
        guard let configured = keysUser else {
            return .ok("sshkeys.command-user", subject: subject, "\(user) (not compared with twofoldd's authorized_keys_user: the daemon was not asked, or its config file is not readable here)")
        }
        if user == "root" || user == configured {
            return .ok("sshkeys.command-user", subject: subject, "\(user): twofoldd lets it ask for keys"
                       + (user == "root" ? " (root: a dedicated user with authorized_keys_user is safer)" : ""))
        }
        let allowed = configured.map { "only root and \($0)" } ?? "only root (authorized_keys_user is not set)"
        return .error("sshkeys.command-user", subject: subject,
                      "sshd runs the command as \(user), but twofoldd answers \(allowed): no registered key is accepted",
                      fix: configured.map { "`AuthorizedKeysCommandUser \($0)` in \(configName)" }
                          ?? "`authorized_keys_user = \(user)` in twofoldd.conf, then `systemctl reload twofoldd`")
    }

    /// With the policy's verify-required, sshd's own PubkeyAuthOptions should say it too.
    private func verifyRequiredFinding() -> Finding? {
        guard verifyRequired == true else { return nil }
        let subject = "\(configName): PubkeyAuthOptions"
        let options = settings.values["pubkeyauthoptions"] ?? "none"
        if options.split(separator: ",").contains("verify-required") {
            return .ok("sshkeys.verify-required", subject: subject, "\(options): every key login needs the key's PIN (or built-in verification)")
        }
        return .warning("sshkeys.verify-required", subject: subject,
                        "\(options): the keys twofoldd serves carry verify-required, but keys sshd finds elsewhere (AuthorizedKeysFile) need only a touch",
                        fix: "`PubkeyAuthOptions verify-required` in \(configName), then `systemctl reload ssh`")
    }
}

extension SSHKeysCheck {
    /// twofoldd's authorized_keys_user from its config file: .some(nil) when it sets none (or the
    /// daemon runs on built-in defaults), nil when the file cannot be read or parsed.
    static func authorizedKeysUser(configFile: String?) -> String?? {
        guard let configFile else { return .some(nil) }
        struct Unreadable: Error { let message: String }
        guard let text = try? ConfigFile.read(configFile, required: true, error: Unreadable.init) else { return nil }
        var user: String?
        guard (try? ConfigFile.parse(text, source: configFile, comments: .hash, error: Unreadable.init, set: { key, value, _ in
            if key == "authorized_keys_user" { user = value.isEmpty ? nil : value }
        })) != nil else { return nil }
        return .some(user)
    }
}
