/// The fake FIDO2 key of the tests (pam/tests/fake_fido.so, never installed): a software key that
/// libfido2 finds through `fido_dev_info_manifest` when the library is preloaded into a child.
/// Its knobs are `TWOFOLD_FAKE_FIDO*` variables (pam/tests/fake_fido.c lists them); each key has its
/// own state file (credentials, sign counter, PIN retries) and log (one line per call or command).
public struct FakeFidoKey: Sendable {
    public static let library = PAMBuild.directory + "/tests/fake_fido.so"
    public static let check = PAMBuild.directory + "/tests/fake_fido_check"
    public static let checkScript = PAMBuild.directory + "/tests/fake_fido_check.sh"

    /// Builds the fake and its checker (make -C pam, under the build lock); throws make's output.
    public static func build() throws {
        for target in ["tests/fake_fido.so", "tests/fake_fido_check"] {
            let (status, output) = try PAMBuild.make(target)
            guard status == 0 else { throw HarnessError("make -C pam \(target) failed (\(status)):\n\(output)") }
        }
    }

    public let directory: String
    public var statePath: String { directory + "/key.state" }
    public var logPath: String { directory + "/key.log" }

    /// A new key: no credentials yet, in a fresh temporary directory.
    public init() throws {
        directory = try makeTemporaryDirectory("tf-fido")
    }

    /// The environment that plugs this key into a child: the preload, the state, the log, and `knobs`
    /// (full names, e.g. `["TWOFOLD_FAKE_FIDO_UP": "0"]`).
    public func environment(_ knobs: [String: String] = [:]) -> [String: String] {
        ["LD_PRELOAD": Self.library, "TWOFOLD_FAKE_FIDO_STATE": statePath, "TWOFOLD_FAKE_FIDO_LOG": logPath]
            .merging(knobs) { $1 }
    }

    /// What the key saw so far ("manifest", "open", "getInfo", "getAssertion up=1 uv=0", ...).
    public func log() -> [String] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    public func remove() {
        _ = try? ChildProcess.run(["/bin/rm", "-rf", directory])
    }
}
