import TwofoldCrypto

/// An OpenSSH public key as `ssh-keygen` writes it (`TYPE BASE64 [COMMENT]`), checked: the blob
/// decodes, names the same type, and has the fields its type has. Nothing in it is secret.
/// Hardware-backed (`sk-`) keys are what Twofold serves first; other types only if the policy says so.
public struct SSHPublicKey: Sendable, Equatable, Codable {
    public var type: String
    /// The decoded key blob (the SSH wire form).
    public var blob: [UInt8]
    public var comment: String

    public static let securityKeyTypes: Set<String> = ["sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com"]
    public static let otherTypes: Set<String> = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]
    static let maxBlob = 16_384
    static let maxComment = 256

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(type: String, blob: [UInt8], comment: String = "") {
        self.type = type
        self.blob = blob
        self.comment = comment
    }

    /// Parses one line of a `.pub` file. Options (as in authorized_keys) are refused: the policy
    /// decides them when the key is served.
    public init(line: String) throws {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count >= 2 else { throw Invalid("expected 'TYPE BASE64 [COMMENT]', as in a .pub file") }
        let type = fields[0]
        guard Self.securityKeyTypes.contains(type) || Self.otherTypes.contains(type) else {
            throw Invalid("'\(type.prefix(64))' is not a key type Twofold serves (sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, or with the policy's leave ssh-ed25519, ecdsa-sha2-*, ssh-rsa)")
        }
        guard let blob = Base64.decode(fields[1]), !blob.isEmpty, blob.count <= Self.maxBlob else {
            throw Invalid("the key's base64 does not decode (or is over \(Self.maxBlob) bytes)")
        }
        let comment = fields.dropFirst(2).joined(separator: " ")
        guard comment.utf8.count <= Self.maxComment, comment.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw Invalid("the comment must be at most \(Self.maxComment) printable characters")
        }
        try Self.checkBlob(blob, type: type)
        self.init(type: type, blob: blob, comment: comment)
    }

    /// The blob's fields: the type again, then the type's own (RFC 4253 §6.6, PROTOCOL.u2f).
    static func checkBlob(_ blob: [UInt8], type: String) throws {
        var reader = SSHWireReader(blob)
        guard let named = reader.string(), named == Array(type.utf8) else { throw Invalid("the key blob names another type than the line") }
        let fieldCount: Int
        switch type {
        case "sk-ecdsa-sha2-nistp256@openssh.com": fieldCount = 3   // curve, point, application
        case "sk-ssh-ed25519@openssh.com": fieldCount = 2           // key, application
        case "ssh-ed25519": fieldCount = 1
        case "ssh-rsa": fieldCount = 2                              // e, n
        default: fieldCount = 2                                     // ecdsa: curve, point
        }
        var last: [UInt8] = []
        for _ in 0..<fieldCount {
            guard let field = reader.string() else { throw Invalid("the key blob is cut short") }
            last = field
        }
        guard reader.atEnd else { throw Invalid("the key blob has trailing bytes") }
        if type.hasPrefix("sk-"), !last.starts(with: Array("ssh:".utf8)) {
            throw Invalid("a security key's application must start with 'ssh:'")
        }
    }

    public var isSecurityKey: Bool { Self.securityKeyTypes.contains(type) }

    /// `SHA256:...` as `ssh-keygen -l` prints it.
    public var fingerprint: String { "SHA256:" + String(Base64.encode(Crypto.sha256(blob)).prefix { $0 != "=" }) }

    /// The line for sshd (`AuthorizedKeysCommand`): options first, then the key, then the comment.
    public func authorizedKeysLine(options: [String]) -> String {
        (options.isEmpty ? "" : options.joined(separator: ",") + " ") + type + " " + Base64.encode(blob) + (comment.isEmpty ? "" : " " + comment)
    }
}

/// A user's registered SSH key.
public struct SSHKeyRecord: Sendable, Equatable, Codable {
    /// Unique per user among SSH keys (`FactorName` rules).
    public var name: String
    public var key: SSHPublicKey
    public var addedAtMillis: Int64

    public init(name: String, key: SSHPublicKey, addedAtMillis: Int64) {
        self.name = name
        self.key = key
        self.addedAtMillis = addedAtMillis
    }
}

/// An SSH key with its user (admin listings, imports).
public struct UserSSHKey: Sendable, Equatable {
    public var user: String
    public var key: SSHKeyRecord

    public init(user: String, key: SSHKeyRecord) {
        self.user = user
        self.key = key
    }
}

/// Reads SSH wire strings (u32 length, bytes).
struct SSHWireReader {
    private let bytes: [UInt8]
    private var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { offset == bytes.count }

    mutating func string() -> [UInt8]? {
        guard bytes.count - offset >= 4 else { return nil }
        let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        guard bytes.count - offset - 4 >= length else { return nil }
        defer { offset += 4 + length }
        return Array(bytes[offset + 4..<offset + 4 + length])
    }
}
