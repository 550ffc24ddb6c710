import NIOCore

/// An IP address and a TCP port to listen on, as `metrics_listen` spells it: `127.0.0.1:9464`, or
/// `[::1]:9464` for IPv6. Addresses only, no names: the daemon resolves nothing at start. Port 0
/// takes a free port, which the log names.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Nil when `text` is not ADDRESS:PORT with a literal IPv4 or bracketed IPv6 address.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            return nil
        }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
            guard host.contains(":") else { return nil }
        } else if host.contains(":") {
            return nil   // IPv6 needs brackets, or the port is ambiguous
        }
        guard (try? SocketAddress(ipAddress: String(host), port: port)) != nil else { return nil }
        self.host = String(host)
        self.port = port
    }

    var socketAddress: SocketAddress {
        get throws { try SocketAddress(ipAddress: host, port: port) }
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
