import Foundation

/// The software security key of the SSH tests (pam/tests/sk/sk_soft.so, never installed): OpenSSH's
/// client tools load it as their middleware (`ssh -o SecurityKeyProvider=`, `SSH_SK_PROVIDER`,
/// `ssh-keygen -w`). Its private keys travel in the key files' key handles, so one library serves every
/// key; each instance is a directory for the key files enrolled through it and the middleware's log
/// (one line per call: "version", "enroll ecdsa flags=0x01 pin=no -> 0", "sign ecdsa flags=0x01 pin=no
/// -> flags=0x05"). Signatures carry the user-verified flag only when asked (`userVerified`).
public struct SoftSecurityKey: Sendable {
    public static let library = PAMBuild.directory + "/tests/sk/sk_soft.so"
    public static let checkScript = PAMBuild.directory + "/tests/sk/sk_check.sh"

    /// The two sk- key types of OpenSSH.
    public enum KeyType: String, Sendable {
        case ecdsa = "ecdsa-sk", ed25519 = "ed25519-sk"
    }

    /// An enrolled key: the private key file (for `ssh -i`) and its public line (`sk-…@openssh.com AAAA…`).
    public struct KeyFile: Sendable {
        public let path: String
        public let publicLine: String
    }

    /// Builds the middleware (make -C pam, under the build lock); throws make's output.
    public static func build() throws {
        let (status, output) = try PAMBuild.make("tests/sk/sk_soft.so")
        guard status == 0 else { throw HarnessError("make -C pam tests/sk/sk_soft.so failed (\(status)):\n\(output)") }
    }

    public let directory: String
    public var logPath: String { directory + "/sk.log" }

    /// A fresh directory for keys and the log; builds the middleware first.
    public init() throws {
        try Self.build()
        directory = try makeTemporaryDirectory("tf-sk")
    }

    /// Enrolls a new key with `ssh-keygen -t TYPE -w sk_soft.so` (no passphrase), as `name` in the
    /// directory; `verifyRequired`: `-O verify-required` (the key file asks for UV when signing);
    /// `noTouchRequired`: `-O no-touch-required` (it does not ask for user presence).
    public func enroll(_ type: KeyType = .ecdsa, name: String, verifyRequired: Bool = false,
                       noTouchRequired: Bool = false) throws -> KeyFile {
        let path = directory + "/" + name
        let options = (verifyRequired ? ["-O", "verify-required"] : []) + (noTouchRequired ? ["-O", "no-touch-required"] : [])
        let (status, output) = try ChildProcess.run(
            ["/usr/bin/ssh-keygen", "-q", "-t", type.rawValue, "-w", Self.library, "-N", "", "-C", name, "-f", path] + options,
            environment: environment(["PATH": "/usr/bin:/bin"]), input: "")
        guard status == 0, let line = try? String(contentsOfFile: path + ".pub", encoding: .utf8) else {
            throw HarnessError("ssh-keygen -t \(type.rawValue) -w sk_soft.so failed (\(status)): \(output)")
        }
        return KeyFile(path: path, publicLine: line.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// `base` with the middleware's log and, when `userVerified`, TWOFOLD_SK_UV=1 (signatures carry UV).
    public func environment(_ base: [String: String], userVerified: Bool = false) -> [String: String] {
        var environment = base
        environment["TWOFOLD_SK_LOG"] = logPath
        environment["TWOFOLD_SK_UV"] = userVerified ? "1" : "0"
        return environment
    }

    /// The middleware's calls so far.
    public func log() -> [String] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    /// The calls that signed something ("sign …"), the others left out.
    public func signatures() -> [String] { log().filter { $0.hasPrefix("sign ") } }

    public func remove() {
        _ = try? ChildProcess.run(["/bin/rm", "-rf", directory])
    }
}
