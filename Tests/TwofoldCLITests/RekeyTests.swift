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

/// Key rotation end to end: a real twofoldd restarted through the steps of the procedure with its
/// config rewritten, the real twofoldctl rekey, logins over the socket. TOTP users log in at
/// ascending offsets (-1, 0, +1) where one logs in more than once, so no login is a replay.
@Suite struct RekeyTests {
    @Test("the procedure step by step: logins work at every step, new secrets go under the new key, rekey moves the rest, and without the old key every user and recovery code still works")
    func rotationStepByStep() throws {
        let daemon = try DaemonProcess()
        let old = daemon.stateDirectory + "/twofold.key"
        let users = try daemon.importUsers("r", count: 3)
        guard case .enrollment(let offer) = try daemon.control(.enrollBegin(user: "pend", currentCode: nil, name: nil)) else {
            throw HarnessError("enrollBegin failed")
        }
        let oldID = try #require(try daemon.sealedCounts().keys.first)
        #expect(try daemon.sealedCounts() == [oldID: 20], "3 × (a secret and 5 codes), a pending secret, the pepper")
        let newPath = daemon.directory + "/new.key"
        let newID = try daemon.newKey(newPath)

        // 1. The new key as a previous key: registered, opens nothing yet, seals nothing.
        try daemon.configureKeys(keyFile: old, previous: [newPath])
        let check = try CLI.runProgram([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(check.status == 0 && check.stdout.contains("sealing key \(oldID) (\(old)): known to the database")
                && check.stdout.contains("previous key \(newID) (\(newPath)): new to the database"), "\(check)")
        #expect(try daemon.reload().hasSuffix("needs a restart: previous_key_files"), "keys change only at a restart")
        daemon.stop()
        try daemon.start()
        #expect(try daemon.login("r0", answer: users[0].app.code(offset: -1)) == .success)

        // 2. Sealing with the new key, the old one kept to open: old secrets log in, new ones go under the new key.
        try daemon.configureKeys(keyFile: newPath, previous: [old])
        daemon.stop()
        try daemon.start()
        #expect(try daemon.login("r1", answer: users[1].app.code(offset: -1)) == .success)
        let added = try daemon.importUsers("n", count: 1)
        #expect(try daemon.sealedCounts() == [oldID: 20, newID: 6])
        let info = try daemon.ctl(["doctor", "--json", "--no-sshd", "--pam-dir", daemon.directory]).json(DoctorOutput.self)
        #expect(info.named("key.rotation").first?.message.contains("20 secrets are not under the sealing key yet") == true, "\(info)")

        // 3. rekey: everything under the new key, audited.
        let rekey = try daemon.ctl(["rekey"])
        #expect(rekey.status == 0, "\(rekey)")
        #expect(rekey.stdout.hasPrefix("Re-sealing under key \(newID) (previous key: \(oldID)).\n"), "\(rekey)")
        #expect(rekey.stdout.hasSuffix("Re-sealed 20 secrets, 6 were already under key \(newID); every secret is now under key \(newID); previous keys can be removed.\n"), "\(rekey)")
        #expect(try daemon.sealedCounts() == [newID: 26])
        let checked = try daemon.ctl(["rekey", "--check"])
        #expect(checked.stdout.contains("\(newID) (sealing)") && checked.stdout.contains("Every secret is under the sealing key: the previous keys can be removed."), "\(checked)")
        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 1000)) else { throw HarnessError("audit") }
        #expect(entries.filter { $0.action == "rekey" }.map(\.outcome) == ["started", "success"])
        #expect(entries.last { $0.action == "rekey" }?.reason == "every sealed secret (26) is under key \(newID)")
        let finished = try daemon.ctl(["doctor", "--json", "--no-sshd", "--pam-dir", daemon.directory]).json(DoctorOutput.self)
        #expect(finished.named("key.rotation").first?.message.hasPrefix("rotation finished: every secret is under key \(newID)") == true, "\(finished)")

        // 4. The old key removed: every user, a recovery code and the pending enrollment still work.
        try daemon.configureKeys(keyFile: newPath)
        daemon.stop()
        try daemon.start()
        for (user, offset) in [(users[0], 0), (users[1], 0), (users[2], 0), (added[0], 0)] {
            #expect(try daemon.login(user.user, answer: user.app.code(offset: offset)) == .success, "\(user.user)")
        }
        #expect(try daemon.login("r2", answer: users[2].recoveryCodes[3]) == .success, "a recovery code made before the rotation")
        #expect(try daemon.login("r2", answer: users[2].recoveryCodes[3]) == .failure, "and used once")
        let pending = try Authenticator(base32: offer.secretBase32)
        guard case .recoveryCodes = try daemon.control(.enrollVerify(user: "pend", codes: [pending.code()])) else {
            throw HarnessError("the pending enrollment does not verify")
        }
        #expect(try daemon.ctl(["doctor", "--json", "--no-sshd", "--pam-dir", daemon.directory]).json(DoctorOutput.self).named("key.rotation").isEmpty)
    }

    @Test("the credential form: twofold.key seals, twofold.previous-key opens, rekey moves everything to the credential's key")
    func credentials() throws {
        let daemon = try DaemonProcess()
        let users = try daemon.importUsers("c", count: 2)
        let credentials = daemon.directory + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: false)
        let newID = try daemon.newKey(credentials + "/twofold.key")
        try FileManager.default.copyItem(atPath: daemon.stateDirectory + "/twofold.key", toPath: credentials + "/twofold.previous-key")
        // systemd's credential files are read-only; their mode is not checked.
        for name in ["twofold.key", "twofold.previous-key"] { chmod(credentials + "/" + name, 0o444) }
        daemon.stop()
        try daemon.start(extraEnvironment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(daemon.log.contains("sealing key from systemd credential"))
        #expect(daemon.log.contains("keys=\"sealing key \(newID) (credential twofold.key), previous key "), "\(daemon.log.suffix(3000))")
        #expect(try daemon.login("c0", answer: users[0].app.code(offset: -1)) == .success)
        #expect(try daemon.ctl(["rekey"]).status == 0)
        #expect(try daemon.sealedCounts() == [newID: 2 * 6 + 1])
        try FileManager.default.removeItem(atPath: credentials + "/twofold.previous-key")
        daemon.stop()
        try daemon.start(extraEnvironment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(try daemon.usersFailingToLogIn(users).isEmpty)
    }

    @Test("a key the database does not know is refused: alone, or a mistyped key file next to a known key; nothing is created")
    func unknownKeysAreRefused() throws {
        let daemon = try DaemonProcess()
        let users = try daemon.importUsers("u", count: 1)
        let old = daemon.stateDirectory + "/twofold.key"
        let stranger = daemon.directory + "/stranger.key"
        let strangerID = try daemon.newKey(stranger)
        daemon.stop()

        try daemon.configureKeys(keyFile: stranger)
        let refusal = "no key twofoldd holds (sealing key \(strangerID) (\(stranger))) is one the database \(daemon.stateDirectory)/twofold.sqlite knows"
        #expect(throws: HarnessError.self) { try daemon.start() }
        #expect(daemon.log.contains(refusal), "\(daemon.log.suffix(2000))")
        let check = try CLI.runProgram([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(check.status == 1 && (check.stdout + check.stderr).contains(refusal), "\(check)")

        let typo = daemon.stateDirectory + "/twofold.kye"
        try daemon.configureKeys(keyFile: typo, previous: [old])
        #expect(throws: HarnessError.self) { try daemon.start() }
        #expect(daemon.log.contains("\(typo) does not exist; with previous keys configured twofoldd never creates its sealing key"), "\(daemon.log.suffix(2000))")
        #expect(!FileManager.default.fileExists(atPath: typo))

        try daemon.configureKeys(keyFile: old)
        try daemon.start()
        #expect(try daemon.login("u0", answer: users[0].app.code()) == .success)
    }

}

/// The rekey tests that hold thousands of users and dozens of threads for tens of seconds. They run in
/// a `swift test` of their own, after the rest and bounded in time (scripts/run-tests.sh): alongside
/// the whole suite on two cores they starved the threads the other tests' stores need, and twice the
/// run never finished. The hang itself was PostgresConnector waiting for good on a connection the
/// server had closed (fixed, with its regression test); this test's daemon outliving the run was a
/// retain cycle of LoginLoad's threads (fixed in `stop()`).
@Suite struct RekeyLoadTests {
    @Test("rekey under 64 clients logging in all along: zero failed logins")
    func rekeyUnderLoad() async throws {
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_rhost = 1000")
        let old = daemon.stateDirectory + "/twofold.key"
        _ = try await offPool { try daemon.importUsers("f", count: 3_000) }
        // HOTP tokens: each client logs in again and again with the next counter's code.
        let tokens = try (0..<64).map { _ in try OTPSecret.generate() }
        let items = tokens.enumerated().map { i, secret in
            EnrollmentImport(user: "load\(i)", source: .uri(OTPAuthURI(issuer: "Test", account: "load\(i)", secret: secret,
                                                                        parameters: OTPParameters(method: .hotp)).uriString()))
        }
        guard case .importedMany(let outcomes) = try daemon.control(.importEnrollments(items)), outcomes.allSatisfy({ $0.error == nil }) else {
            throw HarnessError("HOTP import failed")
        }
        let newPath = daemon.directory + "/new.key"
        let newID = try daemon.newKey(newPath)
        try daemon.configureKeys(keyFile: newPath, previous: [old], extra: "max_dialogs_per_rhost = 1000")
        daemon.stop()
        try daemon.start()

        let load = LoginLoad(daemon: daemon, tokens: tokens)
        load.start()
        defer { load.stop() }
        try await offPool { try load.waitUntilEveryClientLoggedIn() }
        let (rekey, started, ended) = try await offPool {
            let started = Date()
            let rekey = try daemon.ctl(["rekey"])
            return (rekey, started, Date())
        }
        load.stop()
        #expect(rekey.status == 0, "\(rekey)")
        #expect(rekey.stdout.contains("every secret is now under key \(newID)"), "\(rekey)")
        let results = load.results
        #expect(results.failures.isEmpty, "failed logins: \(results.failures.prefix(10))")
        let during = results.successes.filter { $0 > started && $0 < ended }.count
        #expect(during >= 64, "only \(during) logins completed while rekey ran (\(ended.timeIntervalSince(started)) s)")
        #expect(rekey.stdout.split(separator: "\n").count >= 4, "the rekey took several steps: \(rekey)")
        #expect(try daemon.sealedCounts() == [newID: 3_000 * 6 + 64 + 1])
    }

    @Test("killed halfway (SIGKILL during a rekey of 5,000 users), restarted, run again: it finishes, and every user logs in without the old key")
    func killedHalfwayAndRunAgain() async throws {
        let daemon = try DaemonProcess()
        let old = daemon.stateDirectory + "/twofold.key"
        let users = try await offPool { try daemon.importUsers("k", count: 5_000) }
        let total = 5_000 * 6 + 1
        let newPath = daemon.directory + "/new.key"
        let newID = try daemon.newKey(newPath)
        try daemon.configureKeys(keyFile: newPath, previous: [old])
        daemon.stop()
        try daemon.start()
        let oldID = try #require(try daemon.sealedCounts().keys.first)

        // Killed once a third is done: the daemon dies in the middle of a step.
        let cut = try await offPool {
            let session = try daemon.interactive(["rekey"])
            try session.read(until: { output in
                output.split(separator: "\n").contains { line in
                    line.hasPrefix("re-sealed ") && Int(line.dropFirst(10).prefix { $0.isNumber }).map { $0 >= total / 3 } == true
                }
            }, timeout: 120)
            daemon.kill()
            return session.finish()
        }
        #expect(cut.status == 3, "the CLI lost the daemon: \(cut)")

        try daemon.start()
        let halfway = try daemon.sealedCounts()
        #expect(halfway[newID, default: 0] >= total / 3 && halfway[oldID, default: 0] > 0 && halfway.values.reduce(0, +) == total, "\(halfway)")
        let again = try await offPool { try daemon.ctl(["rekey"]) }
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.hasSuffix("Re-sealed \(halfway[oldID]!) secrets, \(halfway[newID]!) were already under key \(newID); every secret is now under key \(newID); previous keys can be removed.\n"), "\(again)")
        #expect(try daemon.sealedCounts() == [newID: total])

        try daemon.configureKeys(keyFile: newPath)
        daemon.stop()
        try daemon.start()
        #expect(try await offPool { try daemon.usersFailingToLogIn(users) }.isEmpty)
        #expect(try daemon.login("k4999", answer: users[4_999].recoveryCodes[0]) == .success)
    }
}

/// 64 clients, each on its own thread with its own HOTP user, logging in until stopped.
final class LoginLoad: @unchecked Sendable {
    struct Results {
        var successes: [Date] = []
        var failures: [String] = []
    }

    private let daemon: DaemonProcess
    private let tokens: [SecretBytes]
    private let stopped = Atomic<Bool>(false)
    private let state = Mutex(Results())
    private var threads: [Thread] = []
    private let done = DispatchGroup()
    /// Left by each client after its first login.
    private let warmedUp = DispatchGroup()

    init(daemon: DaemonProcess, tokens: [SecretBytes]) {
        self.daemon = daemon
        self.tokens = tokens
    }

    func start() {
        for (i, secret) in tokens.enumerated() {
            done.enter()
            warmedUp.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                var counter: UInt64 = 0
                while !stopped.load(ordering: .relaxed) {
                    let code = OneTimeCode.hotp(secret: secret, counter: counter, digits: 6, algorithm: .sha1)
                    counter += 1
                    let verdict = Result { try daemon.login("load\(i)", answer: code) }
                    state.withLock { results in
                        if case .success(.success) = verdict {
                            results.successes.append(Date())
                        } else {
                            results.failures.append("load\(i) counter \(counter - 1): \(verdict)")
                        }
                    }
                    if counter == 1 { warmedUp.leave() }
                }
            }
            thread.start()
            threads.append(thread)
        }
    }

    /// Waits until each client has finished a login (at most 60 s).
    func waitUntilEveryClientLoggedIn() throws {
        guard warmedUp.wait(timeout: .now() + 60) == .success else { throw HarnessError("not every client logged in within 60 s") }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        done.wait()
        // Each thread's closure holds this object: let them go, so that it (and the daemon it
        // holds, whose deinit stops twofoldd) is freed when the test ends.
        threads.removeAll()
    }

    var results: Results { state.withLock { $0 } }
}
