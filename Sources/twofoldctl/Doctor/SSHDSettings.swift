/// sshd's effective settings as `sshd -T` prints them (lower-case keywords, one per line).
struct SSHDSettings {
    var values: [String: String] = [:]

    init(output: String) {
        for line in output.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard let key = parts.first, values[String(key)] == nil else { continue }
            values[String(key)] = parts.count > 1 ? String(parts[1]) : ""
        }
    }

    func flag(_ key: String) -> Bool? { values[key].map { $0.lowercased() == "yes" } }

    var usePAM: Bool { flag("usepam") ?? false }
    /// OpenSSH before 8.7 calls it ChallengeResponseAuthentication.
    var keyboardInteractive: Bool { flag("kbdinteractiveauthentication") ?? flag("challengeresponseauthentication") ?? true }
    var password: Bool { flag("passwordauthentication") ?? true }
    var publicKey: Bool { flag("pubkeyauthentication") ?? true }
    var authenticationMethods: String { values["authenticationmethods"] ?? "any" }

    /// The method lists a login may complete: AuthenticationMethods' lists (methods without their
    /// `:submethod`), or with `any` each enabled method alone.
    var methodLists: [[String]] {
        let methods = authenticationMethods
        if methods == "any" {
            var lists: [[String]] = []
            if publicKey { lists.append(["publickey"]) }
            if password { lists.append(["password"]) }
            if keyboardInteractive { lists.append(["keyboard-interactive"]) }
            if flag("hostbasedauthentication") == true { lists.append(["hostbased"]) }
            if flag("gssapiauthentication") == true { lists.append(["gssapi-with-mic"]) }
            return lists
        }
        return methods.split(separator: " ").map { list in
            list.split(separator: ",").map { String($0.split(separator: ":").first ?? $0) }
        }
    }

    /// The lines `doctor` shows: the settings that decide whether the code is asked.
    var summary: String {
        [("UsePAM", "usepam"), ("KbdInteractiveAuthentication", "kbdinteractiveauthentication"),
         ("AuthenticationMethods", "authenticationmethods"), ("PasswordAuthentication", "passwordauthentication"),
         ("PubkeyAuthentication", "pubkeyauthentication")].map { name, key in "\(name) \(values[key] ?? "?")" }.joined(separator: ", ")
    }
}
