#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The credentials of the process at the other end of a Unix socket, from SO_PEERCRED: on this
/// host, or (`relayed`) on the host of a relay, as that host reported them.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// Set when the peer is on another host and reached this server through that host's relay.
    public var relayed: RelayedPeer?

    public init(pid: Int32, uid: UInt32, gid: UInt32, relayed: RelayedPeer? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.relayed = relayed
    }

    /// Root of this host. Root of a relay's host is root there only: never an admin here.
    public var isRoot: Bool { uid == 0 && relayed == nil }
    public var description: String {
        "pid=\(pid) uid=\(uid) gid=\(gid)" + (relayed.map { " host=\($0.host)" } ?? "")
    }

    /// Reads SO_PEERCRED of an accepted channel. Fails if the channel is not a Unix socket.
    static func of(_ channel: Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerCredentialsError.unsupported)
        }
        let future: EventLoopFuture<RawPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(RawPeerCredentials.option))
        return future.map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
    }
}

enum PeerCredentialsError: Error { case unsupported }

/// Linux `struct ucred` (pid_t, uid_t, gid_t), which Glibc only declares under _GNU_SOURCE.
struct RawPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    /// SO_PEERCRED from <asm-generic/socket.h>.
    static let option: Int32 = 17
}

/// Looks up accounts in the system's user database (NSS), as PAM does.
public enum Accounts {
    /// The uid of user `name`, or nil if there is no such user.
    public static func uid(of name: String) -> UInt32? {
        withPasswd(name: name) { $0.pointee.pw_uid }
    }

    /// The account's name as the system spells it (`pw_name`), or nil if there is no such user.
    /// With case-insensitive NSS sources (sssd, LDAP) "Alice" finds "alice".
    public static func canonicalName(of name: String) -> String? {
        withPasswd(name: name) { String(cString: $0.pointee.pw_name) }
    }

    /// The name of the user with `uid`, or nil.
    public static func name(of uid: UInt32) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getpwuid_r(uid, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, let found = result else { return nil }
        return String(cString: found.pointee.pw_name)
    }

    /// The names of every group `user` belongs to (primary and supplementary).
    public static func groups(of user: String) -> Set<String> {
        guard let gid = withPasswd(name: user, { $0.pointee.pw_gid }) else { return [] }
        var count: Int32 = 64
        var gids = [gid_t](repeating: 0, count: Int(count))
        while getgrouplist(user, gid, &gids, &count) == -1 {
            gids = [gid_t](repeating: 0, count: Int(count) + 64)
            count = Int32(gids.count)
        }
        var names = Set<String>()
        for g in gids.prefix(Int(count)) {
            var grp = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: 16_384)
            if getgrgid_r(g, &grp, &buffer, buffer.count, &result) == 0, let found = result {
                names.insert(String(cString: found.pointee.gr_name))
            }
        }
        return names
    }

    private static func withPasswd<T>(name: String, _ body: (UnsafeMutablePointer<passwd>) -> T) -> T? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getpwnam_r(name, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, let found = result else { return nil }
        return body(found)
    }
}
