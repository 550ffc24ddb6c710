import Foundation
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Builds `pam/pam_twofold.so` and the test driver once (under a file lock, since several test
/// targets may ask at once) and gives their paths.
enum PAMBuild {
    static let module = Paths.root + "/pam/pam_twofold.so"
    static let driver = Paths.root + "/pam/tests/pam_driver"

    static let ready: Result<Void, HarnessError> = {
        do {
            let (status, output) = try ChildProcess.run(["/usr/bin/flock", "/tmp/twofold-pam-build.lock", "/usr/bin/make", "-s", "-C", Paths.root + "/pam", "all"])
            return status == 0 ? .success(()) : .failure(HarnessError("make -C pam failed:\n\(output)"))
        } catch {
            return .failure(HarnessError("cannot run make: \(error)"))
        }
    }()

    static func require() throws { try ready.get() }
}

/// Runs a command, returning its exit status and combined output.
@discardableResult
func run(_ argv: [String], environment: [String: String]? = nil, input: String? = nil) throws -> (status: Int32, output: String) {
    try ChildProcess.run(argv, environment: environment, input: input)
}
