import TwofoldCore

/// Made-up .pub lines of security keys for tests that never show them to sshd.
public enum SSHTestKeys {
    /// The SSH wire form: each field as u32 length and bytes.
    public static func wire(_ fields: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for field in fields {
            out += withUnsafeBytes(of: UInt32(field.count).bigEndian) { Array($0) }
            out += field
        }
        return out
    }

    public static func skEd25519(seed: UInt8, application: String = "ssh:", comment: String = "key") -> String {
        let blob = wire([Array("sk-ssh-ed25519@openssh.com".utf8), Array(repeating: seed, count: 32), Array(application.utf8)])
        return "sk-ssh-ed25519@openssh.com " + Base64.encode(blob) + " " + comment
    }
}
