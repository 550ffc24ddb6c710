#if canImport(Glibc)
import Glibc
#endif

/// Who may send requests: the uid of `daemon_user`, looked up at each connection (twofoldd runs
/// with DynamicUser=: its uid is allocated at each start and its name resolves only while it
/// runs), and the uids of `allowed_uids`.
struct PeerAuthorization: Sendable {
    let daemonUser: String?
    let allowedUIDs: Set<UInt32>

    init(_ configuration: DeliveryConfiguration) {
        daemonUser = configuration.daemonUser
        allowedUIDs = Set(configuration.allowedUIDs)
    }

    func allows(uid: UInt32) -> Bool {
        if allowedUIDs.contains(uid) { return true }
        guard let daemonUser else { return false }
        return Self.uid(of: daemonUser) == uid
    }

    /// getpwnam_r(3): the user's uid, or nil if there is no such user (now).
    static func uid(of name: String) -> UInt32? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, let found = result else { return nil }
        return found.pointee.pw_uid
    }
}
