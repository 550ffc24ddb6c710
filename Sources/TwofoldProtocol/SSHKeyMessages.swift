/// One SSH key as listings show it. Nothing in it is secret.
public struct SSHKeyInfo: Codable, Sendable, Equatable {
    public var user: String
    public var name: String
    /// `sk-ssh-ed25519@openssh.com`, ...
    public var type: String
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    public var fingerprint: String
    public var comment: String
    public var addedMillis: Int64

    public init(user: String, name: String, type: String, fingerprint: String, comment: String, addedMillis: Int64) {
        self.user = user
        self.name = name
        self.type = type
        self.fingerprint = fingerprint
        self.comment = comment
        self.addedMillis = addedMillis
    }
}

/// One key of a bulk SSH key import.
public struct SSHKeyImport: Codable, Sendable, Equatable {
    public var user: String
    /// nil: from the key's type.
    public var name: String?
    /// One line of a .pub file.
    public var line: String

    public init(user: String, name: String?, line: String) {
        self.user = user
        self.name = name
        self.line = line
    }
}
