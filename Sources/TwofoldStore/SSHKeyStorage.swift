import TwofoldCore

/// A user's SSH keys as sshd's `authorized-keys` serves them (`authorizedSSHKeys`): the keys in
/// name order with the user's own SSH key rule, read together.
public struct UserSSHKeys: Sendable, Equatable {
    /// The user's SSH key rule; nil: the policy decides (host, then default), or no keys.
    public var rule: SSHKeyRule?
    public var keys: [SSHKeyRecord]

    public init(rule: SSHKeyRule? = nil, keys: [SSHKeyRecord] = []) {
        self.rule = rule
        self.keys = keys
    }
}

/// What both backends check of an SSH key before storing it and the words they refuse it with.
/// The messages name the user and the key's name, never the key (public, but not for logs), nor
/// the account a key already belongs to.
extension SSHKeyRecord {
    /// Throws `StoreError.conflict` unless the name is valid and the key is one `SSHPublicKey(line:)`
    /// accepts (a type served, a blob of its type's form, a printable comment within its size).
    package func checkStorable(user: String) throws {
        guard FactorName.isValid(name) else { throw StoreError.conflict("'\(name)' is not a valid SSH key name") }
        // Parsing the line it would serve is the core's one check of a key.
        guard (try? SSHPublicKey(line: key.authorizedKeysLine(options: []))) != nil else {
            throw StoreError.conflict("SSH key '\(name)' of user '\(user)' is not a well-formed \(key.type.prefix(64)) key")
        }
    }

    package static func nameTaken(user: String, name: String) -> StoreError {
        .conflict("user '\(user)' has an SSH key named '\(name)' already")
    }

    /// The same key registered again (to this user under another name, or to another user).
    package static let keyTaken = StoreError.conflict("this SSH key is registered already")
}

extension Array where Element == UserSSHKey {
    /// An import's keys, each checked (`checkStorable`), and refused as adding them one by one
    /// would refuse them: a name given twice to a user, a key given twice. Then only the stored
    /// keys can conflict with them. Throws the first refusal.
    package func checkStorable() throws {
        var names: [String: Set<String>] = [:], blobs = Set<[UInt8]>()
        for item in self {
            try item.key.checkStorable(user: item.user)
            guard names[item.user, default: []].insert(item.key.name).inserted else {
                throw SSHKeyRecord.nameTaken(user: item.user, name: item.key.name)
            }
            guard blobs.insert(item.key.key.blob).inserted else { throw SSHKeyRecord.keyTaken }
        }
    }
}

/// How both backends store a user's SSH key rule: its text form (`SSHKeyRule.description`) in
/// `users.ssh_key_rule`, NULL for the policy's. The schemas' CHECK admits the four texts only.
package enum SSHKeyRuleColumn {
    package static func text(_ rule: SSHKeyRule?) -> String? { rule?.description }

    /// The stored text read back; one the code cannot parse is a `corruptRecord` naming the user
    /// and the column (never a crash, never nil: that would quietly hand the user to the policy).
    package static func rule(_ text: String?, user: String) throws -> SSHKeyRule? {
        guard let text else { return nil }
        guard let rule = SSHKeyRule(text: text) else {
            throw StoreError.corruptRecord(user: user, reason: "unknown ssh_key_rule '\(text.prefix(64))'")
        }
        return rule
    }
}
