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

/// SSH keys as a daemon is set up for them, for `twofoldctl doctor`.
public struct SSHKeysInfo: Codable, Sendable, Equatable {
    /// `authorized_keys_user` (nil: only root may ask for the keys sshd serves).
    public var authorizedKeysUser: String?
    /// A relay's `ssh_key_cache_seconds` (nil on a server or a single host).
    public var cacheSeconds: Int?
    /// The SSH key rule the policy gives the daemon's own host (without a user's own rule): its
    /// types and whether keys are served with verify-required (nil on a relay, which holds no policy).
    public var keyTypes: String?
    public var verifyRequired: Bool?

    public init(authorizedKeysUser: String?, cacheSeconds: Int?, keyTypes: String?, verifyRequired: Bool?) {
        self.authorizedKeysUser = authorizedKeysUser
        self.cacheSeconds = cacheSeconds
        self.keyTypes = keyTypes
        self.verifyRequired = verifyRequired
    }
}
