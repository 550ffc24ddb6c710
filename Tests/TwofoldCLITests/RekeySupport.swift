import Foundation
import Synchronization
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A user made for the rotation tests: a TOTP app and the recovery codes (google-authenticator
/// scratch codes) imported with it.
struct RotatedUser: Sendable {
    var user: String
    var app: Authenticator
    var recoveryCodes: [String]
}

extension DaemonProcess {
    /// Rewrites the config with the test defaults, `key_file` and `previous_key_files` (restart to apply).
    func configureKeys(keyFile: String, previous: [String] = [], extra: String = "") throws {
        let config = """
        socket = \(socketPath)
        state_directory = \(stateDirectory)
        log_level = debug
        throttle_delay_ms = 0
        issuer = TwofoldTest
        key_file = \(keyFile)
        previous_key_files = \(previous.joined(separator: ", "))
        \(extra)
        """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// `twofoldd --new-key-file PATH`; the new key's id.
    func newKey(_ path: String) throws -> String {
        let made = try CLI.runProgram([TestPaths.twofoldd, "--new-key-file", path])
        guard made.status == 0, let id = made.stdout.split(separator: " ").dropFirst(2).first, id.count == 16 else {
            throw HarnessError("twofoldd --new-key-file: \(made)")
        }
        return String(id)
    }

    /// Imports `count` users named PREFIX0, PREFIX1, ... with a TOTP factor and `codes` recovery
    /// codes each, 200 to a request.
    func importUsers(_ prefix: String, count: Int, codes: Int = 5) throws -> [RotatedUser] {
        var users: [RotatedUser] = []
        for start in stride(from: 0, to: count, by: 200) {
            var items: [EnrollmentImport] = []
            for i in start..<min(start + 200, count) {
                let app = try Authenticator.random()
                let scratch = (0..<codes).map { _ in String(format: "%08d", Int.random(in: 10_000_000...99_999_999)) }
                users.append(RotatedUser(user: "\(prefix)\(i)", app: app, recoveryCodes: scratch))
                items.append(EnrollmentImport(user: "\(prefix)\(i)", source: .googleAuthenticator(([app.base32, "\" TOTP_AUTH"] + scratch).joined(separator: "\n") + "\n")))
            }
            guard case .importedMany(let outcomes) = try control(.importEnrollments(items)), outcomes.allSatisfy({ $0.error == nil }) else {
                throw HarnessError("bulk import failed")
            }
        }
        return users
    }

    /// `twofoldctl rekey --check --json`: the counts by key id ("format N" for blobs without one).
    func sealedCounts() throws -> [String: Int] {
        let result = try ctl(["rekey", "--check", "--json"])
        guard result.status == 0 else { throw HarnessError("rekey --check: \(result)") }
        let summary = try result.json(RekeySummary.self)
        return Dictionary(summary.counts.map { ($0.keyID ?? "format \($0.formatVersion)", $0.count) }, uniquingKeysWith: +)
    }

    /// Logs every user in with the app's current code, 16 at a time; the users that failed.
    func usersFailingToLogIn(_ users: [RotatedUser]) throws -> [String] {
        let failed = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { lane in
            for user in users.enumerated().filter({ $0.offset % 16 == lane }).map(\.element) {
                let verdict = try? LoginDialog.run(socketPath: socketPath, start: AuthStart(user: user.user, service: "sshd", rhost: "127.0.0.1", tty: "ssh"),
                                                   timeoutSeconds: 30) { _, _ in user.app.code() }.verdict
                if verdict != .success { failed.withLock { $0.append(user.user) } }
            }
        }
        return failed.withLock { $0 }
    }

    func login(_ user: String, answer: String) throws -> VerdictCode {
        try LoginDialog.run(socketPath: socketPath, start: AuthStart(user: user, service: "sshd", rhost: "127.0.0.1", tty: "ssh"),
                            timeoutSeconds: 30) { _, _ in answer }.verdict
    }
}

/// What `twofoldctl rekey --json` and `rekey --check --json` print.
struct RekeySummary: Decodable {
    var complete: Bool
    var sealingKey: String
    var previousKeys: [String]
    var resealed: Int
    var alreadyCurrent: Int
    var changed: Int
    var unreadable: Int
    var counts: [SealedCount]
}
