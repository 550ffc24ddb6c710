/// The relay ⇄ tier protocol (docs/protocol.md, "Relay ⇄ tier"): the versions this code speaks,
/// offered and chosen by TLS ALPN during the handshake, so a tier and relays of different versions
/// agree before a byte of a dialog is sent.
public enum RelayProtocol {
    /// Versions this code speaks, newest first (a relay offers them in this order).
    public static let versions = [1]

    /// The ALPN name of a version: `twofold-relay/1`.
    public static func alpn(_ version: Int) -> String { "twofold-relay/\(version)" }

    /// The version an ALPN name stands for, if this code speaks it.
    public static func version(alpn: String?) -> Int? {
        guard let alpn, alpn.hasPrefix("twofold-relay/"), let v = Int(alpn.dropFirst("twofold-relay/".count)) else { return nil }
        return versions.contains(v) ? v : nil
    }
}

/// What a relay tells a server about the connection it forwards: RELAY's JSON, the first message on
/// a tier connection, before the AUTH_START or REQUEST it carries. Everything here is the claim of
/// the relay's host (which the server knows by its certificate, never by this document); it decides
/// only logins on that host, never an admin right.
public struct RelayContext: Codable, Sendable, Equatable {
    /// The local peer on the relay's host, from SO_PEERCRED there.
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// A control request's caller: the peer's account name on that host (nil in a login dialog,
    /// where the AUTH_START names the user, or when the uid has none).
    public var caller: String?
    /// A login dialog's user's groups on that host (the AUTH_START that follows names the user as
    /// the host's NSS spells it).
    public var userGroups: [String]?

    public init(uid: UInt32, gid: UInt32, pid: Int32, caller: String? = nil, userGroups: [String]? = nil) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.caller = caller
        self.userGroups = userGroups
    }
}
