import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// SSH public keys: a registry per user, served to sshd through `twofoldctl authorized-keys` as
/// its AuthorizedKeysCommand. sshd checks the keys itself (a security key's signature, its
/// presence and verification flags); Twofold decides which keys exist and with which options they
/// are served. Adding one needs a current factor of the user, as for any new credential, or an admin.
/// Which keys, and with which options: the SSH key rule of the chain user › host › default
/// (`Policy.sshKeyRule`), the host being the one sshd runs on (a relay's for relayed requests).
extension ControlService {
    func addSSHKey(_ user: String, name: String?, line: String, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let record = try await store.user(user)
        let chosen = policy.current.sshKeyRule(user: record?.sshKeyRule, host: Self.sshHost(peer))
        let key = try Self.parseSSHKey(line, rule: chosen.rule, because: chosen.because)
        let existing = try await store.sshKeys(user: user)
        let name = try Self.sshKeyName(name, key: key, taken: Set(existing.map(\.name)))
        if !admin {
            guard record?.hasFactor == true else {
                throw ControlFailure(.permissionDenied, "an SSH key needs a second factor first (twofoldctl enroll), or an admin")
            }
            guard let code else { throw ControlFailure(.invalidRequest, "give a current code of one of your factors to add an SSH key") }
            try await requireCurrentCode(code, user: user, peer: peer, purpose: "ssh-key")
        }
        let added = SSHKeyRecord(name: name, key: key, addedAtMillis: clock.nowMillis())
        do {
            try await store.addSSHKey(user: user, added)
        } catch StoreError.conflict {
            throw ControlFailure(.conflict, "this SSH key is already registered, to this or another account")
        }
        await audit("ssh-key", user: user, peer: peer, outcome: "success", reason: "SSH key '\(name)' added (\(key.type), \(key.fingerprint))")
        return .sshKeys([Self.info(user, added)])
    }

    /// The host sshd asks on: the relay's for a relayed request, else this one.
    static func sshHost(_ peer: PeerCredentials) -> String { peer.relayed?.host ?? HostName.local }

    /// A key the rule admits: sk- keys, or any type when the rule's types are `any`.
    static func parseSSHKey(_ line: String, rule: SSHKeyRule, because: String) throws -> SSHPublicKey {
        let key: SSHPublicKey
        do { key = try SSHPublicKey(line: line.trimmingWhitespace().description) } catch let invalid as SSHPublicKey.Invalid {
            throw ControlFailure(.invalidRequest, invalid.description)
        }
        guard rule.admits(key) else {
            throw ControlFailure(.permissionDenied, "the policy (\(because)) admits only hardware-backed SSH keys (ssh-keygen -t ed25519-sk or ecdsa-sk); this is \(key.type)")
        }
        return key
    }

    static func sshKeyName(_ name: String?, key: SSHPublicKey, taken: Set<String>) throws -> String {
        guard let name else {
            let base = key.type.hasPrefix("sk-ssh-ed25519") ? "sk-ed25519" : key.type.hasPrefix("sk-ecdsa") ? "sk-ecdsa"
                : key.type == "ssh-ed25519" ? "ed25519" : key.type == "ssh-rsa" ? "rsa" : "ecdsa"
            return FactorName.next(base, taken: taken)
        }
        guard FactorName.isValid(name) else {
            throw ControlFailure(.invalidRequest, "an SSH key name is 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        }
        guard !taken.contains(name) else { throw ControlFailure(.conflict, "an SSH key named '\(name)' is already registered; remove it first or pick another name") }
        return name
    }

    func removeSSHKeys(_ user: String, name: String?, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let keys = try await store.sshKeys(user: user)
        guard !keys.isEmpty, name == nil || keys.contains(where: { $0.name == name }) else {
            throw ControlFailure(.notFound, "'\(user)' has no SSH key\(name.map { " named '\($0)'" } ?? "")")
        }
        if !admin {
            guard name != nil else { throw ControlFailure(.permissionDenied, "removing all of a user's SSH keys at once is for admins") }
            if try await store.user(user)?.hasFactor == true {
                guard let code else { throw ControlFailure(.invalidRequest, "give a current code of one of your factors to remove an SSH key") }
                try await requireCurrentCode(code, user: user, peer: peer, purpose: "ssh-key")
            }
        }
        let removed = try await store.removeSSHKey(user: user, name: name)
        await audit("ssh-key", user: user, peer: peer, outcome: "success",
                    reason: name.map { "SSH key '\($0)' removed" } ?? "\(removed) SSH key\(removed == 1 ? "" : "s") removed")
        return .ok
    }

    func importSSHKeys(_ items: [SSHKeyImport], peer: PeerCredentials) async throws -> ControlResponse {
        let current = policy.current
        var outcomes: [ImportOutcome] = []
        var accepted: [UserSSHKey] = []
        var taken: [String: Set<String>] = [:]
        var rules: [String: (rule: SSHKeyRule, because: String)] = [:]
        for item in items {
            do {
                let chosen: (rule: SSHKeyRule, because: String)
                if let known = rules[item.user] {
                    chosen = known
                } else {
                    let found = current.sshKeyRule(user: try await store.user(item.user)?.sshKeyRule, host: Self.sshHost(peer))
                    chosen = (found.rule, found.because)
                    rules[item.user] = chosen
                }
                let key = try Self.parseSSHKey(item.line, rule: chosen.rule, because: chosen.because)
                if taken[item.user] == nil { taken[item.user] = Set(try await store.sshKeys(user: item.user).map(\.name)) }
                let name = try Self.sshKeyName(item.name, key: key, taken: taken[item.user] ?? [])
                taken[item.user, default: []].insert(name)
                accepted.append(UserSSHKey(user: item.user, key: SSHKeyRecord(name: name, key: key, addedAtMillis: clock.nowMillis())))
                outcomes.append(ImportOutcome(user: item.user, error: nil))
            } catch let failure as ControlFailure {
                outcomes.append(ImportOutcome(user: item.user, error: failure.message))
            }
        }
        // All or none: with one line refused, nothing is stored, and every other line says so.
        guard outcomes.allSatisfy({ $0.error == nil }) else {
            return .importedMany(outcomes.map { $0.error == nil ? ImportOutcome(user: $0.user, error: "not imported: another line of the import was refused") : $0 })
        }
        do { try await store.importSSHKeys(accepted) } catch StoreError.conflict {
            throw ControlFailure(.conflict, "a key of the import is already registered (to its user or another): nothing was imported")
        }
        await audit("ssh-key", user: nil, peer: peer, outcome: "success", reason: "\(accepted.count) SSH key\(accepted.count == 1 ? "" : "s") imported")
        return .importedMany(outcomes)
    }

    func sshKeyInfos(of user: String) async throws -> [SSHKeyInfo] {
        try await store.sshKeys(user: user).map { Self.info(user, $0) }
    }

    func allSSHKeys() async throws -> [SSHKeyInfo] {
        var result: [SSHKeyInfo] = []
        var after: String?
        while true {
            let page = try await store.listSSHKeys(after: after, limit: 1_000)
            result += page.map { Self.info($0.user, $0.key) }
            guard page.count >= 1_000, let last = page.last else { return result }
            after = last.user
        }
    }

    /// sshd's question on every connection attempt on `host`: the lines to serve, with the
    /// options the user's rule asks for (one read: the keys and the user's own rule). A key of a
    /// type the rule does not admit is not served. Not audited (a read, once per connection); refusals are.
    func authorizedKeyLines(_ user: String, host: String) async throws -> [String] {
        let current = policy.current
        let found = try await store.authorizedSSHKeys(user: user)
        let rule = current.sshKeyRule(user: found.rule, host: host).rule
        return found.keys.compactMap { rule.authorizedKeysLine($0.key) }
    }

    /// `user ssh-key-rule`: the user's own SSH key rule, the first level of the chain (nil: back to
    /// the host's or the policy's). Keys already registered stay; the rule decides which are served.
    func setSSHKeyRule(_ user: String, rule text: String?, peer: PeerCredentials) async throws -> ControlResponse {
        var rule: SSHKeyRule?
        if let text {
            guard let parsed = SSHKeyRule(text: text) else { throw ControlFailure(.invalidRequest, "an SSH key rule is \(SSHKeyRule.syntax)") }
            rule = parsed
        }
        try await store.setSSHKeyRule(user: user, rule)
        await auditChange("policy", user: user, peer: peer, reason: "SSH key rule set to \(rule.map(\.description) ?? "policy")")
        return .ok
    }

    static func info(_ user: String, _ record: SSHKeyRecord) -> SSHKeyInfo {
        SSHKeyInfo(user: user, name: record.name, type: record.key.type, fingerprint: record.key.fingerprint, comment: record.key.comment,
                   addedMillis: record.addedAtMillis)
    }
}

extension ControlService {
    /// `authorizedKeys` for root, `authorized_keys_user` or a relay (which checked its own peer).
    /// A refusal is audited through the refusal auditor; a store that fails gets an error, and
    /// `twofoldctl authorized-keys` then prints nothing (sshd denies the key).
    func serveAuthorizedKeys(_ user: String, peer: PeerCredentials, allowed: Bool) async -> ControlResponse {
        let request = ControlRequest.authorizedKeys(user: user)
        guard allowed else {
            return await refused(request, ControlFailure(.permissionDenied, "only root and authorized_keys_user may ask for the keys sshd serves"), peer: peer)
        }
        guard LoginDialogRunner.isPlausibleName(user), user.utf8.count <= 256 else { return .error(code: .invalidRequest, message: "invalid user name") }
        do {
            return .authorizedKeys(lines: try await authorizedKeyLines(user, host: Self.sshHost(peer)), cached: false)
        } catch {
            logger.error("cannot read SSH keys", metadata: ["user": "\(user)", "error": "\(error)"])
            return .error(code: .unavailable, message: "the store is unavailable")
        }
    }
}
