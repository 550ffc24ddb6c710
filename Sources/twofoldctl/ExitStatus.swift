import TwofoldProtocol

/// The exit codes of `twofoldctl` (listed in the root command's help and in docs/cli.md).
enum ExitStatus {
    static let ok: Int32 = 0
    /// The daemon refused or failed the request, or another error.
    static let failure: Int32 = 1
    /// Bad arguments.
    static let usage: Int32 = 2
    /// twofoldd could not be reached.
    static let unreachable: Int32 = 3
    static let permissionDenied: Int32 = 4
    static let invalidCode: Int32 = 5
    static let locked: Int32 = 6
    /// No code given, or the recovery codes were not confirmed.
    static let cancelled: Int32 = 7

    /// The exit code for a daemon's error answer.
    static func forDaemonError(_ code: ControlErrorCode) -> Int32 {
        switch code {
        case .permissionDenied: return permissionDenied
        case .invalidCode: return invalidCode
        case .locked: return locked
        case .notFound, .invalidRequest, .conflict, .unavailable: return failure
        }
    }
}

/// A command failed: the message for people, the exit code, and the daemon's error code when the
/// daemon refused (for `--json`).
struct CLIFailure: Error, CustomStringConvertible {
    var exitCode: Int32
    var message: String
    var daemonCode: ControlErrorCode?
    /// The command already reported the failure in its output (e.g. a partial bulk import):
    /// only the exit code remains to be given.
    var reported = false

    init(_ exitCode: Int32, _ message: String, daemonCode: ControlErrorCode? = nil, reported: Bool = false) {
        self.exitCode = exitCode
        self.message = message
        self.daemonCode = daemonCode
        self.reported = reported
    }

    var description: String { message }

    /// The machine-readable name of the failure for `--json`.
    var codeName: String {
        if let daemonCode { return daemonCode.rawValue }
        switch exitCode {
        case ExitStatus.unreachable: return "unreachable"
        case ExitStatus.permissionDenied: return "permissionDenied"
        case ExitStatus.cancelled: return "cancelled"
        case ExitStatus.usage: return "usage"
        default: return "failure"
        }
    }
}
