import NIOPosix
import Synchronization

/// SSH public keys served to sshd (twofoldd.conf: `authorized_keys_user`, `ssh_key_cache_seconds`).
public struct SSHKeyConfiguration: Sendable, Equatable {
    /// The account sshd runs `twofoldctl authorized-keys` as (`AuthorizedKeysCommandUser`): it may
    /// ask for the keys to serve and nothing else. nil: only root may ask.
    public var authorizedKeysUser: String?
    /// A relay: how long it serves the keys it last got from the tier while no server answers
    /// (0: never). This bounds how long a revoked key can keep working during an outage.
    public var cacheSeconds = 3_600

    public init() {}

    mutating func set(key: String, value: String, at: String, path: () throws -> String, int: (ClosedRange<Int>) throws -> Int) throws -> Bool {
        switch key {
        case "authorized_keys_user":
            guard value.isEmpty || (value.utf8.count <= 32 && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F && $0 != ":" }) else {
                throw ConfigurationError("\(at): authorized_keys_user must be an account name")
            }
            authorizedKeysUser = value.isEmpty ? nil : value
        case "ssh_key_cache_seconds": cacheSeconds = try int(0...604_800)
        default: return false
        }
        return true
    }
}

/// The uid of `authorized_keys_user`, looked up through NSS once per name (the name changes only
/// with a reload), so sshd's call on every connection costs no lookup.
final class KeysAccount: Sendable {
    private let resolved = Mutex<(name: String, uid: UInt32?)?>(nil)

    /// Whether `uid` is the configured account's.
    func matches(_ uid: UInt32, name: String?) async -> Bool {
        guard let name else { return false }
        if let entry = resolved.withLock({ $0 }), entry.name == name { return entry.uid == uid }
        // NSS may be LDAP or sssd: off the event loops, once per name.
        let looked = (try? await NIOThreadPool.singleton.runIfActive { Accounts.uid(of: name) }) ?? nil
        resolved.withLock { $0 = (name, looked) }
        return looked == uid
    }
}
