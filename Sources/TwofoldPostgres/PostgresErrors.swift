import NIOCore
import PostgresNIO
import TwofoldCrypto
import TwofoldStore

/// PostgreSQL's and postgres-nio's errors as `StoreError`s. A message names the SQLSTATE and the
/// server's message field only: PSQLError's own description may carry the query and its parameters.
extension PostgresConnector {
    static func storeError(_ error: any Error, limit: Duration) -> StoreError {
        switch error {
        case let error as StoreError:
            return error
        case is TimedOut:
            return .database("PostgreSQL did not answer within \(limit.milliseconds) ms")
        case is ConnectionClosed:
            return .database("PostgreSQL closed the connection")
        case let error as PSQLError:
            if let server = error.serverInfo {
                return .database("PostgreSQL error \(server[.sqlState] ?? "?????"): \(server[.message] ?? "no message")")
            }
            var text = "PostgreSQL connection failed (\(error.code))"
            if let underlying = error.underlying { text += ": \(networkErrorText(underlying))" }
            return .database(text)
        case is PostgresDecodingError:
            return .database("PostgreSQL returned a column of an unexpected type")
        case let error as CryptoError:
            return .database(error.description)
        case is CancellationError:
            return .database("the operation was cancelled")
        default:
            return .database("PostgreSQL: \(networkErrorText(error))")
        }
    }

    /// The text of a network error (they hold no data values); the type name of anything else.
    private static func networkErrorText(_ error: any Error) -> String {
        switch error {
        case is IOError, is ChannelError: return String(describing: error)
        default: return String(describing: type(of: error))
        }
    }

    /// Whether `error` means the database cannot be reached (or is not a primary now): such errors
    /// are logged once per outage, not per request. SQLSTATE classes 08 (connection), 53 (resources),
    /// 57 (operator intervention, but 57014, a statement timeout) and 58 (system), and 25006 (a
    /// read-only transaction: connected to a standby).
    static func isOutage(_ error: any Error) -> Bool {
        switch error {
        case is TimedOut, is ConnectionClosed:
            return true
        case let error as PSQLError:
            guard let state = error.serverInfo?[.sqlState] else { return error.code != .tooManyParameters }
            if state == "57014" { return false }
            return ["08", "53", "57", "58"].contains(String(state.prefix(2))) || state == "25006"
        case is StoreError, is PostgresDecodingError, is CryptoError, is CancellationError:
            return false
        default:
            // The pool's errors (a circuit breaker) and NIO's.
            return true
        }
    }
}
