/// Which SSH keys a user's logins take, and how sshd must check them: one level of the chain
/// user › host › default (`Policy.sshKeyRule`). The default level is the policy's `sshKeyTypes`
/// and `sshVerifyRequired`; a host's entry and a user's setting are this rule whole, in its text
/// form (`sk`, `sk,verify-required`, `any`, `any,verify-required`), stored and typed the same way.
public struct SSHKeyRule: Sendable, Equatable, Hashable, CustomStringConvertible {
    public enum Types: String, Sendable, CaseIterable {
        /// Hardware-backed sk- keys only.
        case sk
        /// Plain keys too (ssh-ed25519, ecdsa, ssh-rsa).
        case any
    }

    public var types: Types
    /// Served with `verify-required`: sshd wants the key's PIN or built-in verification, not only a touch.
    public var verifyRequired: Bool

    public init(types: Types = .sk, verifyRequired: Bool = false) {
        self.types = types
        self.verifyRequired = verifyRequired
    }

    public static let verifyOption = "verify-required"

    /// The text form: the types, then `,verify-required` when it is asked for.
    public var description: String { types.rawValue + (verifyRequired ? "," + Self.verifyOption : "") }

    /// Parses the text form: `sk` or `any`, optionally followed by `,verify-required` (spaces
    /// around the comma allowed, nothing else); nil for anything else.
    public init?(text: String) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: " ") }
        guard (1...2).contains(parts.count), let types = Types(rawValue: parts[0]) else { return nil }
        guard parts.count == 1 || parts[1] == Self.verifyOption else { return nil }
        self.init(types: types, verifyRequired: parts.count == 2)
    }

    /// Whether keys of this kind may be registered and are served.
    public func admits(_ key: SSHPublicKey) -> Bool { key.isSecurityKey || types == .any }

    /// sshd's line for `key`, or nil when the rule does not serve it. `verify-required` applies to
    /// sk- keys only (sshd ignores it on plain keys); `no-touch-required` is never served.
    public func authorizedKeysLine(_ key: SSHPublicKey) -> String? {
        guard admits(key) else { return nil }
        return key.authorizedKeysLine(options: verifyRequired && key.isSecurityKey ? [Self.verifyOption] : [])
    }

    /// The syntax, for errors.
    public static let syntax = "sk or any, optionally followed by ,verify-required"
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var text = self
        while text.first == set { text.removeFirst() }
        while text.last == set { text.removeLast() }
        return String(text)
    }
}
