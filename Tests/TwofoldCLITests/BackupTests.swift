import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, `twofoldctl backup` end to end: the real twofoldctl against a real twofoldd over its
/// socket, the backup read back by Python's SQLite (not the daemon's). The daemon's side of a
/// backup's life (closed connections, limits, a full state directory, PostgreSQL) is in
/// TwofoldDaemonTests/BackupTests.swift.
@Suite struct BackupTests {
    /// What `twofoldctl backup --json` prints.
    struct Written: Decodable {
        var path: String
        var size: Int64
        var sha256: String
        var users: Int
        var takenMillis: Int64
        var host: String
        var twofoldVersion: String
    }

    /// Every name in `directory` (the backup, and anything a failure could have left).
    static func names(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    static func makeDirectory(_ path: String, owner: TestUser? = nil) throws -> String {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        if let owner { chown(path, owner.uid, owner.gid) }
        return path
    }

    @Test("a backup taken while 64 clients log in: none of them fails; a valid, self-contained SQLite file (integrity_check, no -wal, mode 0600) with every user enrolled before it and the manifest; its bytes are the daemon's SHA-256; audited; restored, the old secrets and recovery codes log in")
    func backupUnderLoad() async throws {
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_rhost = 1000")
        let enrolledUsers = try daemon.importUsers("b", count: 300, codes: 2)
        let enrolled = enrolledUsers.map(\.user)
        let tokens = try (0..<64).map { _ in try OTPSecret.generate() }
        let items = tokens.enumerated().map { i, secret in
            EnrollmentImport(user: "load\(i)", source: .uri(OTPAuthURI(issuer: "Test", account: "load\(i)", secret: secret,
                                                                        parameters: OTPParameters(method: .hotp)).uriString()))
        }
        guard case .importedMany(let outcomes) = try daemon.control(.importEnrollments(items)), outcomes.allSatisfy({ $0.error == nil }) else {
            throw HarnessError("HOTP import failed")
        }
        let directory = try Self.makeDirectory(daemon.directory + "/out")
        let output = directory + "/twofold-backup.sqlite"

        let load = LoginLoad(daemon: daemon, tokens: tokens)
        load.start()
        defer { load.stop() }
        try await offPool { try load.waitUntilEveryClientLoggedIn() }
        let (result, started, ended) = try await offPool {
            let started = Date()
            let result = try daemon.ctl(["backup", "--output", output, "--json"])
            return (result, started, Date())
        }
        load.stop()
        #expect(result.status == 0, "\(result)")
        let results = load.results
        #expect(results.failures.isEmpty, "failed logins: \(results.failures.prefix(10))")
        #expect(results.successes.contains { $0 > started && $0 < ended }, "no login completed while the backup ran")

        // What twofoldctl wrote is what twofoldd sent: length and SHA-256, mode 0600, nothing else beside it.
        let written = try result.json(Written.self)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(written.path == output && Int64(bytes.count) == written.size)
        #expect(Crypto.hex(Crypto.sha256(bytes)) == written.sha256)
        var info = stat()
        let privateMode = stat(output, &info) == 0 && info.st_mode & 0o777 == 0o600
        #expect(privateMode, "mode \(String(info.st_mode & 0o7777, radix: 8))")
        #expect(Self.names(directory) == ["twofold-backup.sqlite"], "no -wal, -journal or temporary beside it")
        #expect(Self.names(daemon.stateDirectory).allSatisfy { !$0.hasPrefix("backup-in-progress-") })

        // Self-contained: a rollback-journal database (file format bytes 1, 1; a WAL database says 2, 2), whole.
        #expect(Array(bytes.prefix(16)) == Array("SQLite format 3\0".utf8) && bytes[18] == 1 && bytes[19] == 1)
        #expect(try ReadOnlySQLite.integrityCheck(output) == "ok")
        let rows = try ReadOnlySQLite.query(output, ["SELECT name FROM users", "SELECT key, CAST(value AS TEXT) FROM meta WHERE key LIKE 'backup/%'"])
        let users = Set(rows[0].compactMap { $0[0] })
        let expected = Set(enrolled + (0..<64).map { "load\($0)" })
        #expect(expected.isSubset(of: users), "missing: \(expected.subtracting(users).sorted().prefix(10))")
        #expect(written.users == users.count)
        let manifest = try #require(try BackupManifest(rows: Dictionary(uniqueKeysWithValues: rows[1].map { ($0[0]!, Array($0[1]!.utf8)) })))
        #expect(manifest.takenMillis >= Int64(started.timeIntervalSince1970 * 1000) && manifest.takenMillis <= Int64(ended.timeIntervalSince1970 * 1000))
        #expect(manifest == BackupManifest(takenMillis: written.takenMillis, host: written.host, twofoldVersion: TwofoldVersion.string))
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        #expect(manifest.host == String(cString: host))

        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 10_000)) else {
            throw HarnessError("audit")
        }
        let audited = entries.filter { $0.action == "backup" }
        #expect(audited.count == 1 && audited.first?.outcome == "success", "\(audited)")
        #expect(audited.first?.reason?.hasPrefix("\(written.size) bytes, \(written.users) users, taken at ") == true, "\(audited)")

        // And it restores: a fresh state directory holding only the key file (kept apart), `twofoldd
        // restore`, a daemon started on it. The old secrets log in (the next step's code: the
        // current one may have been used after the backup), and so do the backup's recovery codes.
        let fresh = try DaemonProcess(start: false)
        try FileManager.default.createDirectory(atPath: fresh.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(atPath: daemon.stateDirectory + "/twofold.key", toPath: fresh.stateDirectory + "/twofold.key")
        let restored = try ChildProcess.run([TestPaths.twofoldd, "restore", "--config", fresh.configPath, "--from", output])
        #expect(restored.status == 0, "\(restored.output)")
        try fresh.start()
        let sample = enrolledUsers.enumerated().filter { $0.offset % 10 == 0 }.map(\.element)
        for user in sample {
            #expect(try fresh.login(user.user, answer: user.app.code(offset: 1)) == .success, "\(user.user)'s old secret")
            #expect(try fresh.login(user.user, answer: user.recoveryCodes[0]) == .success, "\(user.user)'s recovery code")
        }
    }

    @Test("refused cleanly, nothing left behind: a non-admin (exit 4, audited), an existing file without --force (left as it was), twofoldd down (exit 3); --force replaces the file")
    func refusalsLeaveNothing() throws {
        let daemon = try DaemonProcess()
        _ = try daemon.importUsers("r", count: 3, codes: 1)

        // twofold-test may write the directory, but is no admin.
        let mine = try Self.makeDirectory(daemon.directory + "/mine", owner: try TestUser.user)
        let user = try daemon.ctlAsTestUser(["backup", "--output", mine + "/b.sqlite"])
        #expect(user.status == 4 && user.stderr.contains("this command needs root or membership of the admin group"), "\(user)")
        #expect(Self.names(mine).isEmpty, "\(Self.names(mine))")
        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: "refused", limit: 100)) else {
            throw HarnessError("audit")
        }
        let uid = try TestUser.user.uid
        #expect(entries.contains { $0.action == "backup" && $0.peerUID == uid }, "\(entries)")

        // An existing file: refused before twofoldd is asked anything, and left as it was.
        let directory = try Self.makeDirectory(daemon.directory + "/out")
        let output = directory + "/b.sqlite"
        try "keep me\n".write(toFile: output, atomically: false, encoding: .utf8)
        let existing = try daemon.ctl(["backup", "--output", output])
        #expect(existing.status == 1 && existing.stderr.contains("\(output) exists already: give another --output, or --force to replace it"),
                "\(existing)")
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "keep me\n")
        #expect(Self.names(directory) == ["b.sqlite"])

        let forced = try daemon.ctl(["backup", "--output", output, "--force"])
        #expect(forced.status == 0, "\(forced)")
        #expect(forced.stdout.hasPrefix("Wrote \(output): ") && forced.stdout.contains(" 3 users, taken at "), "\(forced)")
        #expect(forced.stdout.contains("keep a copy of the key file too, apart from the backup"), "\(forced)")
        #expect(try ReadOnlySQLite.integrityCheck(output) == "ok")
        #expect(Self.names(directory) == ["b.sqlite"])

        // twofoldd down: exit 3, no file.
        daemon.stop()
        let down = try daemon.ctl(["backup", "--output", directory + "/c.sqlite"])
        #expect(down.status == 3 && down.stderr.contains("cannot reach twofoldd"), "\(down)")
        #expect(Self.names(directory) == ["b.sqlite"])
    }
}
