import ArgumentParser
import TwofoldClient
import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The connection to twofoldd for one command. It connects on the first request and again after
/// `disconnect()`, which interactive commands call before waiting for a person (the daemon closes
/// connections that stay silent for its idle timeout).
final class DaemonSession {
    let socketPath: String
    let timeout: Double
    private var connection: TwofoldConnection?

    /// `minimumTimeout`: what a request of the command may take whatever --timeout says.
    init(_ options: GlobalOptions, minimumTimeout: Double = 0) {
        socketPath = options.socketPath
        timeout = max(options.timeout, minimumTimeout)
    }

    deinit { disconnect() }

    func disconnect() {
        connection?.close()
        connection = nil
    }

    /// Whether a connection is open now (a request would not open a new one).
    var isConnected: Bool { connection?.isOpen == true }

    /// Sends `request` on the connection already open, never a new one: twofoldd keeps a key
    /// registration's challenge in the connection that asked for it (`keyBegin`), so `keyFinish`
    /// on another connection could only fail, and less clearly.
    func sendOnOpenConnection(_ request: ControlRequest) throws(CLIFailure) -> ControlResponse {
        guard isConnected else {
            throw CLIFailure(ExitStatus.unreachable, "the connection to twofoldd at \(socketPath) closed before \(request.name)")
        }
        return try send(request)
    }

    /// Sends one request. An error answer throws `CLIFailure` with its exit code and the daemon's
    /// message; so does any failure to talk to the daemon.
    func send(_ request: ControlRequest) throws(CLIFailure) -> ControlResponse {
        let response: ControlResponse
        do {
            if connection == nil || connection?.isOpen == false {
                connection = try TwofoldConnection(socketPath: socketPath, timeoutSeconds: timeout)
            }
            response = try connection!.request(request, as: ControlResponse.self)
        } catch let error as ClientError {
            disconnect()
            throw failure(for: error)
        } catch {
            disconnect()
            throw CLIFailure(ExitStatus.failure, "\(error)")
        }
        if case .error(let code, let message) = response {
            throw CLIFailure(ExitStatus.forDaemonError(code), message, daemonCode: code)
        }
        return response
    }

    private func failure(for error: ClientError) -> CLIFailure {
        switch error.kind {
        case .daemonUnreachable(let path, let code, let reason):
            if code == EACCES || code == EPERM {
                return CLIFailure(ExitStatus.permissionDenied, "permission denied connecting to twofoldd at \(path): \(reason)")
            }
            return CLIFailure(ExitStatus.unreachable, "cannot reach twofoldd at \(path): \(reason) (is twofoldd running? see --socket)")
        case .timedOut:
            return CLIFailure(ExitStatus.unreachable, "twofoldd at \(socketPath) did not answer within \(formatSeconds(timeout)) s")
        case .closedByDaemon:
            return CLIFailure(ExitStatus.unreachable, "twofoldd at \(socketPath) closed the connection")
        case .refused:
            return CLIFailure(ExitStatus.permissionDenied, error.description)
        default:
            return CLIFailure(ExitStatus.failure, error.description)
        }
    }

    private func formatSeconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// An answer the command did not expect.
func unexpected(_ response: ControlResponse) -> CLIFailure {
    let name: String
    switch response {
    case .ok: name = "ok"
    case .error: name = "error"
    case .enrollment: name = "enrollment"
    case .recoveryCodes: name = "recoveryCodes"
    case .status: name = "status"
    case .users: name = "users"
    case .audit: name = "audit"
    case .policy: name = "policy"
    case .imported: name = "imported"
    case .importedMany: name = "importedMany"
    case .serverInfo: name = "serverInfo"
    case .policyImpact: name = "policyImpact"
    case .policyExplanation: name = "policyExplanation"
    case .factors: name = "factors"
    case .rekey: name = "rekey"
    case .adminSession: name = "adminSession"
    case .breakGlass: name = "breakGlass"
    case .hosts: name = "hosts"
    case .metricsText: name = "metricsText"
    case .contacts: name = "contacts"
    case .keyChallenge: name = "keyChallenge"
    case .keys: name = "keys"
    case .sshKeys: name = "sshKeys"
    case .authorizedKeys: name = "authorizedKeys"
    case .contactCodeSent: name = "contactCodeSent"
    case .backup: name = "backup"
    case .backupChunk: name = "backupChunk"
    }
    return CLIFailure(ExitStatus.failure, "unexpected answer from twofoldd: \(name)")
}

/// A command that talks to the daemon: `run()` opens a session, calls `execute`, and reports a
/// `CLIFailure` (on standard error, and as JSON on standard output with `--json`) before exiting
/// with its code.
protocol DaemonCommand: ParsableCommand {
    var options: GlobalOptions { get }
    /// Seconds a request of this command may take at least, whatever --timeout says (0: --timeout's).
    static var minimumTimeout: Double { get }
    func execute(_ session: DaemonSession) throws(CLIFailure)
}

extension DaemonCommand {
    static var minimumTimeout: Double { 0 }

    mutating func run() throws {
        let session = DaemonSession(options, minimumTimeout: Self.minimumTimeout)
        defer { session.disconnect() }
        do {
            try execute(session)
        } catch {
            if error.reported { throw ExitCode(error.exitCode) }
            Output.error("twofoldctl: \(error.message)")
            if options.json {
                Output.json(JSONError(error: .init(code: error.codeName, message: error.message, exitCode: error.exitCode)))
            }
            throw ExitCode(error.exitCode)
        }
    }
}

/// `{"error": {"code": ..., "message": ..., "exitCode": ...}}` on standard output with --json.
struct JSONError: Encodable {
    struct Body: Encodable {
        var code: String
        var message: String
        var exitCode: Int32
    }
    var error: Body
}

/// `{"ok": true, "user": ...}` for commands that change something and have nothing else to print.
struct JSONDone: Encodable {
    var ok = true
    var user: String?
    var message: String
}
