import TwofoldProtocol

/// A peer on another host, as a server of the tier sees it: the host (known by its certificate,
/// through the host registry) and what that host's relay said about the peer (`RelayContext`).
public struct RelayedPeer: Sendable, Equatable {
    /// The registered name of the host whose certificate the connection presented.
    public var host: String
    /// The certificate's fingerprint (SHA-256 of its DER, lowercase hex): revoking it closes the connection.
    public var fingerprint: String
    public var context: RelayContext

    public init(host: String, fingerprint: String, context: RelayContext) {
        self.host = host
        self.fingerprint = fingerprint
        self.context = context
    }

    /// The peer's credentials as the host reported them, marked as relayed.
    var credentials: PeerCredentials {
        PeerCredentials(pid: context.pid, uid: context.uid, gid: context.gid, relayed: self)
    }
}
