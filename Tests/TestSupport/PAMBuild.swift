/// Builds `pam/pam_twofold.so` and the test driver once per test process, under a file lock
/// (several test targets may ask at once), and gives their paths.
public enum PAMBuild {
    public static let directory = TestPaths.root + "/pam"
    public static let module = directory + "/pam_twofold.so"
    public static let driver = directory + "/tests/pam_driver"

    private static let failure: String? = {
        do {
            let (status, output) = try ChildProcess.run(["/usr/bin/flock", "/tmp/twofold-pam-build.lock", "/usr/bin/make", "-s", "-C", directory, "all"])
            return status == 0 ? nil : "make -C pam failed (\(status)):\n\(output)"
        } catch {
            return "cannot run make: \(error)"
        }
    }()

    /// Whether the module is built with the key step (libfido2's headers were found): it then
    /// declares BINARY_PAYLOAD|FIDO2 in AUTH_START unless given `nofido2`.
    public static let fido2: Bool = {
        guard let (status, output) = try? make("print-fido2"), status == 0 else { return false }
        return output.split(separator: "\n").last == "yes"
    }()

    /// Throws with make's output if the module or driver did not build.
    public static func require() throws {
        if let failure { throw HarnessError(failure) }
    }

    /// `make -C pam TARGET` under the same lock.
    public static func make(_ target: String) throws -> (status: Int32, output: String) {
        try ChildProcess.run(["/usr/bin/flock", "/tmp/twofold-pam-build.lock", "/usr/bin/make", "-s", "-C", directory, target])
    }
}
