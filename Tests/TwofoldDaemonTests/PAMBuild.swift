import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Builds `pam/pam_twofold.so` and the test driver once (under a file lock, since several test
/// targets may ask at once) and gives their paths.
enum PAMBuild {
    static let module = Paths.root + "/pam/pam_twofold.so"
    static let driver = Paths.root + "/pam/tests/pam_driver"

    static let ready: Result<Void, HarnessError> = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        process.arguments = ["/tmp/twofold-pam-build.lock", "make", "-s", "-C", Paths.root + "/pam", "all"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return .failure(HarnessError("cannot run make: \(error)")) }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return .failure(HarnessError("make -C pam failed:\n\(String(decoding: output, as: UTF8.self))"))
        }
        return .success(())
    }()

    static func require() throws { try ready.get() }
}

/// Runs a command, returning its exit status and combined output.
@discardableResult
func run(_ argv: [String], environment: [String: String]? = nil, input: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    if let environment { process.environment = environment }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
