import Synchronization

/// Caps on what one party may hold at once, so a local flood costs the flooder and not the other
/// users. Connections: every non-root uid has its own cap, and non-root peers together never take
/// the slots reserved for root, whose dialogs (sshd, login, su, sudo) therefore always find one.
/// Login dialogs: any local user can open uid-0 dialogs through setuid `su`/`sudo` with a wrong
/// password, and a remote one through sshd, so dialogs are also capped per target user, per
/// requesting user (PAM_RUSER) and per remote host (PAM_RHOST).
final class AdmissionControl: Sendable {
    struct Limits: Sendable, Equatable {
        var maxConnections = 512
        var reservedForRoot = 128
        var perUID = 16
        var perUser = 4
        var perRUser = 8
        var perRHost = 32
        /// Refused connections being answered and drained (a verdict, then up to a second of the
        /// client's bytes read and dropped) at once: twice the total; beyond that each gets its
        /// verdict and is closed at once. Only non-root peers are ever refused a connection before
        /// the total is full.
        var refusing: Int { 2 * maxConnections }
    }

    /// Why a connection or a dialog was refused: for the log and the audit, never a secret.
    enum Refusal: Error, Equatable, CustomStringConvertible {
        case connections(total: Int)
        case reservedForRoot
        case uid(UInt32, Int)
        case user(String, Int)
        case ruser(String, Int)
        case rhost(String, Int)

        var description: String {
            switch self {
            case .connections(let n): "all \(n) connections are in use"
            case .reservedForRoot: "the remaining connections are reserved for root's login dialogs"
            case .uid(let uid, let n): "uid \(uid) already holds \(n) connections"
            case .user(let user, let n): "\(n) login dialogs for '\(user)' are already in progress"
            case .ruser(let ruser, let n): "\(n) login dialogs requested by '\(ruser)' are already in progress"
            case .rhost(let rhost, let n): "\(n) login dialogs from \(rhost) are already in progress"
            }
        }
    }

    /// The dialog counters one admitted dialog holds; give it back with `release(_:)`.
    struct DialogTicket: Sendable {
        fileprivate let user: String
        fileprivate let ruser: String?
        fileprivate let rhost: String?
    }

    private struct Counts {
        var limits: Limits
        var total = 0
        var nonRoot = 0
        var refusing = 0
        var perUID: [UInt32: Int] = [:]
        var perUser: [String: Int] = [:]
        var perRUser: [String: Int] = [:]
        var perRHost: [String: Int] = [:]
    }

    private let counts: Mutex<Counts>

    init(limits: Limits) {
        counts = Mutex(Counts(limits: limits))
    }

    /// The caps in force. A reload may lower them below what is held: nothing open is cut, new
    /// connections and dialogs wait until the counts are under the new caps.
    var limits: Limits {
        get { counts.withLock { $0.limits } }
        set { counts.withLock { $0.limits = newValue } }
    }

    /// Counts a new connection of `uid`, or says why it may not have one.
    func admitConnection(uid: UInt32) -> Refusal? {
        counts.withLock { c in
            guard c.total < c.limits.maxConnections else { return .connections(total: c.limits.maxConnections) }
            if uid != 0 {
                guard c.nonRoot < c.limits.maxConnections - c.limits.reservedForRoot else { return .reservedForRoot }
                let held = c.perUID[uid, default: 0]
                guard held < c.limits.perUID else { return .uid(uid, held) }
                c.perUID[uid] = held + 1
                c.nonRoot += 1
            }
            c.total += 1
            return nil
        }
    }

    func releaseConnection(uid: UInt32) {
        counts.withLock { c in
            c.total -= 1
            guard uid != 0 else { return }
            c.nonRoot -= 1
            Self.decrement(&c.perUID, uid)
        }
    }

    /// Whether one more refused connection may be answered with a verdict (and counted).
    func beginRefusing() -> Bool {
        counts.withLock { c in
            guard c.refusing < c.limits.refusing else { return false }
            c.refusing += 1
            return true
        }
    }

    func endRefusing() {
        counts.withLock { $0.refusing -= 1 }
    }

    /// Counts a login dialog, or says which cap it would break.
    func admitDialog(user: String, ruser: String?, rhost: String?) -> Result<DialogTicket, Refusal> {
        counts.withLock { c in
            let u = c.perUser[user, default: 0]
            guard u < c.limits.perUser else { return .failure(.user(user, u)) }
            if let ruser {
                let n = c.perRUser[ruser, default: 0]
                guard n < c.limits.perRUser else { return .failure(.ruser(ruser, n)) }
            }
            if let rhost {
                let n = c.perRHost[rhost, default: 0]
                guard n < c.limits.perRHost else { return .failure(.rhost(rhost, n)) }
            }
            c.perUser[user] = u + 1
            if let ruser { c.perRUser[ruser, default: 0] += 1 }
            if let rhost { c.perRHost[rhost, default: 0] += 1 }
            return .success(DialogTicket(user: user, ruser: ruser, rhost: rhost))
        }
    }

    func release(_ ticket: DialogTicket) {
        counts.withLock { c in
            Self.decrement(&c.perUser, ticket.user)
            if let ruser = ticket.ruser { Self.decrement(&c.perRUser, ruser) }
            if let rhost = ticket.rhost { Self.decrement(&c.perRHost, rhost) }
        }
    }

    /// Drops keys that reach zero, so the maps hold only parties with something open.
    private static func decrement<Key: Hashable>(_ map: inout [Key: Int], _ key: Key) {
        guard let n = map[key] else { return }
        if n <= 1 { map.removeValue(forKey: key) } else { map[key] = n - 1 }
    }
}
