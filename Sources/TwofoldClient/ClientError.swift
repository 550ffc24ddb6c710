import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a client operation failed. Compare with `==` against the static members, or switch on `kind`.
public struct ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The socket could not be connected (`errno` and its text).
        case daemonUnreachable(path: String, errno: Int32, reason: String)
        /// The daemon did not accept, read or answer within the timeout.
        case timedOut
        /// The daemon closed the connection (EOF or reset) before the expected message.
        case closedByDaemon
        /// The daemon broke the protocol (bad frame, unexpected message); the connection is closed.
        case `protocol`(ProtocolError)
        /// The daemon refused the connection (a limit, e.g. too many connections from this uid).
        case refused(String)
        /// The daemon sent `PROTOCOL_ERROR` with this reason; the connection is closed.
        case daemonProtocolError(String)
        /// A message could not be encoded (a field over its bound, a NUL in a text).
        case invalidMessage(ProtocolError)
        /// A control request could not be encoded as JSON.
        case invalidRequest(String)
        /// A control response's JSON did not decode as the expected type.
        case invalidResponse(String)
        /// The answer callback returned nil: the dialog was closed without answering.
        case conversationAborted
        /// The connection was already closed by this side.
        case notConnected
        /// Any other failing system call.
        case system(operation: String, errno: Int32, reason: String)
    }

    public let kind: Kind

    public init(_ kind: Kind) {
        self.kind = kind
    }

    public static let timedOut = ClientError(.timedOut)
    public static let closedByDaemon = ClientError(.closedByDaemon)
    public static let conversationAborted = ClientError(.conversationAborted)
    public static let notConnected = ClientError(.notConnected)

    public static func daemonUnreachable(path: String, errno code: Int32) -> ClientError {
        ClientError(.daemonUnreachable(path: path, errno: code, reason: errnoText(code)))
    }

    public static func `protocol`(_ error: ProtocolError) -> ClientError {
        ClientError(.protocol(error))
    }

    static func system(_ operation: String, errno code: Int32) -> ClientError {
        ClientError(.system(operation: operation, errno: code, reason: errnoText(code)))
    }

    public var description: String {
        switch kind {
        case .daemonUnreachable(let path, _, let reason):
            return "cannot reach twofoldd at \(path): \(reason)"
        case .timedOut:
            return "timed out waiting for twofoldd"
        case .closedByDaemon:
            return "twofoldd closed the connection"
        case .protocol(let error):
            return "protocol error from twofoldd: \(error)"
        case .refused(let reason):
            return "twofoldd refused the connection: \(reason)"
        case .daemonProtocolError(let reason):
            return "twofoldd reported a protocol error: \(reason)"
        case .invalidMessage(let error):
            return "cannot send message: \(error)"
        case .invalidRequest(let what):
            return "cannot send request: \(what)"
        case .invalidResponse(let what):
            return "unexpected response from twofoldd: \(what)"
        case .conversationAborted:
            return "the login dialog was abandoned without an answer"
        case .notConnected:
            return "the connection to twofoldd is closed"
        case .system(let operation, _, let reason):
            return "\(operation) failed: \(reason)"
        }
    }
}

func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
