#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol

/// A relay's emergency codes: single-use codes for named accounts of this host, for when no server
/// of the tier can be reached. Issued by this host's root (who could change PAM anyway), 80 bits
/// each, stored only as salted SHA-256 hashes in one file of the relay's state directory (0600,
/// written atomically and fsync'd before any verdict that depends on it), throttled per account,
/// and every issue and use queued for the tier's audit until a server takes it.
final class BreakGlass: Sendable {
    struct Code: Codable {
        var account: String
        var salt: String
        var hash: String
        var issuedMillis: Int64
    }

    struct Failures: Codable {
        var count: Int
        var lockedUntilMillis: Int64?
    }

    struct State: Codable {
        var codes: [Code] = []
        var failures: [String: Failures] = [:]
        /// Events not yet in the tier's audit, oldest first.
        var pending: [AuditEntry] = []
    }

    enum Outcome: Equatable {
        case success(left: Int)
        case failure
        case locked(untilMillis: Int64)
    }

    /// Most unused codes an account may hold; failures before a lock, and its length.
    static let maxCodes = 10
    static let maxFailures = 5
    static let lockMillis: Int64 = 15 * 60_000
    /// Events kept for the tier at most (the oldest are dropped past it, and that is said).
    static let maxPending = 1_000

    let path: String
    private let state: Mutex<State>

    /// Reads the file; a missing one is an empty list, an unreadable one an error for the operator.
    init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            state = Mutex(State())
            return
        }
        guard let decoded = try? JSONDecoder().decode(State.self, from: data) else {
            throw ConfigurationError("the emergency codes file \(path) cannot be read; move it away to start without emergency codes")
        }
        state = Mutex(decoded)
    }

    /// `count` new codes for each account, shown once; their hashes are durable before they are returned.
    func issue(accounts: [String], count: Int, nowMillis: Int64) throws -> [(account: String, code: String)] {
        var issued: [(String, String)] = []
        var codes: [Code] = []
        for account in accounts {
            for _ in 0..<count {
                let code = Base32.encode(try Crypto.randomBytes(10))   // 80 bits, 16 characters
                let salt = try Crypto.randomBytes(16)
                codes.append(Code(account: account, salt: Crypto.hex(salt), hash: Self.hash(code, salt: salt), issuedMillis: nowMillis))
                issued.append((account, Self.grouped(code)))
            }
        }
        try update { state in
            for account in Set(accounts) {
                guard state.codes.filter({ $0.account == account }).count + count <= Self.maxCodes else {
                    throw ConfigurationError("\(account) would hold more than \(Self.maxCodes) emergency codes; clear them first")
                }
            }
            state.codes += codes
            for account in accounts {
                Self.queue(&state, AuditEntry(timeMillis: nowMillis, action: "break-glass", user: account, service: nil, rhost: nil, tty: nil,
                                              peerUID: 0, outcome: "issued", reason: "\(count) emergency code(s) issued on the host"))
            }
        }
        return issued
    }

    /// Unused codes per account.
    func unused() -> [String: Int] {
        state.withLock { Dictionary($0.codes.map { ($0.account, 1) }, uniquingKeysWith: +) }
    }

    func hasCodes(_ account: String) -> Bool { state.withLock { $0.codes.contains { $0.account == account } } }

    /// Removes the unused codes of `account` (nil: of every account); returns how many.
    func clear(account: String?, nowMillis: Int64) throws -> Int {
        var removed = 0
        try update { state in
            let before = state.codes.count
            state.codes.removeAll { account == nil || $0.account == account }
            removed = before - state.codes.count
            Self.queue(&state, AuditEntry(timeMillis: nowMillis, action: "break-glass", user: account, service: nil, rhost: nil, tty: nil,
                                          peerUID: 0, outcome: "cleared", reason: "\(removed) unused emergency code(s) removed on the host"))
        }
        return removed
    }

    /// Checks an answer against every unused code of `account` (each compared in constant time);
    /// a match is used up, and the use queued for the audit, before the result is returned.
    func check(account: String, answer: String, service: String, rhost: String?, nowMillis: Int64) throws -> Outcome {
        let typed = answer.uppercased().filter { $0 != "-" && $0 != " " }
        var outcome = Outcome.failure
        try update { state in
            var failures = state.failures[account] ?? Failures(count: 0)
            if let until = failures.lockedUntilMillis, until > nowMillis {
                outcome = .locked(untilMillis: until)
                return
            }
            var match: Int?
            for (index, code) in state.codes.enumerated() where code.account == account {
                let salt = Crypto.unhex(code.salt) ?? []
                if Crypto.constantTimeEqual(Array(Self.hash(typed, salt: salt).utf8), Array(code.hash.utf8)) { match = index }
            }
            let event: (String, String)
            if let match {
                state.codes.remove(at: match)
                failures = Failures(count: 0)
                outcome = .success(left: state.codes.filter { $0.account == account }.count)
                event = ("success", "emergency code used while no server was reachable")
            } else {
                failures.count += 1
                if failures.count >= Self.maxFailures {
                    failures.lockedUntilMillis = nowMillis + Self.lockMillis
                    failures.count = 0
                }
                outcome = failures.lockedUntilMillis.map { .locked(untilMillis: $0) } ?? .failure
                event = ("failure", "wrong emergency code while no server was reachable")
            }
            state.failures[account] = failures
            Self.queue(&state, AuditEntry(timeMillis: nowMillis, action: "break-glass", user: account, service: service, rhost: rhost, tty: nil,
                                          peerUID: 0, outcome: event.0, reason: event.1))
        }
        return outcome
    }

    /// The events not yet in the tier's audit (at most `limit`).
    func pending(limit: Int) -> [AuditEntry] { state.withLock { Array($0.pending.prefix(limit)) } }

    /// The first `count` pending events reached the tier's audit.
    func delivered(_ count: Int) throws {
        try update { $0.pending.removeFirst(min(count, $0.pending.count)) }
    }

    private static func queue(_ state: inout State, _ entry: AuditEntry) {
        state.pending.append(entry)
        if state.pending.count > maxPending {
            state.pending.removeFirst(state.pending.count - maxPending)
        }
    }

    static func hash(_ code: String, salt: [UInt8]) -> String {
        Crypto.hex(Crypto.sha256(salt + Array(code.utf8)))
    }

    static func grouped(_ code: String) -> String {
        stride(from: 0, to: code.count, by: 4).map { start in
            let from = code.index(code.startIndex, offsetBy: start)
            return String(code[from..<code.index(from, offsetBy: min(4, code.count - start))])
        }.joined(separator: "-")
    }

    /// Changes the state and writes it durably (temporary file, fsync, rename, fsync of the
    /// directory) before the change counts; a failed write leaves the old state in force.
    private func update(_ change: (inout State) throws -> Void) throws {
        try state.withLock { current in
            var next = current
            try change(&next)
            try write(next)
            current = next
        }
    }

    private func write(_ state: State) throws {
        try DurableFile.replace(path, with: try JSONEncoder().encode(state))
    }
}
