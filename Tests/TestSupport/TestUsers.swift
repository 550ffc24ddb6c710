#if canImport(Glibc)
import Glibc
#endif

/// The real accounts the tests run processes as (scripts/test-setup.sh creates them; `make check`
/// runs it). Every non-root test case runs as one of these, never as `nobody`: a daemon that sees
/// every caller as uid 65534 (systemd's PrivateUsers=yes) would pass a test whose caller is nobody.
public struct TestUser: Sendable, CustomStringConvertible {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    /// Keep the account's supplementary groups (initgroups) instead of clearing them.
    public let initGroups: Bool

    /// The ordinary user most tests run as.
    public static var user: TestUser { get throws { try lookup("twofold-test") } }
    /// A second ordinary user, for "one user asks about another".
    public static var other: TestUser { get throws { try lookup("twofold-test2") } }
    /// A member of the group `twofold-admins` (run with its groups).
    public static var admin: TestUser { get throws { try lookup("twofold-admin", initGroups: true) } }
    public static let adminGroup = "twofold-admins"
    /// A member of the group `twofold-req`.
    public static var groupMember: TestUser { get throws { try lookup("twofold-member", initGroups: true) } }
    public static let requiredGroup = "twofold-req"

    /// Looks `name` up with getpwnam_r; a missing account is a harness failure, never a skip.
    public static func lookup(_ name: String, initGroups: Bool = false) throws -> TestUser {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else {
            throw HarnessError("no account '\(name)' on this machine: run `bash scripts/test-setup.sh` as root first (make check does)")
        }
        return TestUser(name: name, uid: entry.pw_uid, gid: entry.pw_gid, initGroups: initGroups)
    }

    /// The argv prefix that runs a command as this user (the tests run as root): real and effective
    /// uid and gid, and no groups but the account's own.
    public var setpriv: [String] {
        ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", initGroups ? "--init-groups" : "--clear-groups", "--"]
    }

    public var description: String { "\(name) (uid \(uid))" }
}
