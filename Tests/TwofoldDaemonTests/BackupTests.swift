import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, `twofoldctl backup` as twofoldd serves it (the CLI's side is in TwofoldCLITests):
/// the copy belongs to its control connection and goes with it, at most one per connection and
/// a few per daemon, stale copies go at start, a full state directory is a clear error that keeps
/// nothing, and a daemon on PostgreSQL refuses with the database's own backups.
@Suite struct BackupDaemonTests {
    /// The daemon's open descriptors that are a backup's copy (its name removed: "(deleted)").
    static func openCopies(_ daemon: DaemonProcess) throws -> [String] {
        let pid = try #require(daemon.process?.pid)
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
            .filter { $0.contains("/backup-in-progress-") }
    }

    /// Files of backups in progress in the state directory.
    static func copiesOnDisk(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("backup-in-progress-") }
    }

    /// Waits (at most 10 s, looking every 10 ms) until `condition` holds: the daemon drops a copy
    /// after the close it hears of, with no event a client could wait on.
    static func eventually(_ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    static func isError(_ response: ControlResponse, _ code: ControlErrorCode, containing text: String = "") -> Bool {
        if case .error(code, let message) = response { return text.isEmpty || message.contains(text) }
        return false
    }

    static func audit(_ daemon: DaemonProcess) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit")
        }
        return entries.filter { $0.action == "backup" }
    }

    @Test("the copy belongs to its connection: its name is gone at once, one per connection, two per daemon, read only there; closed mid-backup, the copy goes and the backup is audited as abandoned")
    func copyGoesWithItsConnection() throws {
        let daemon = try DaemonProcess()
        for name in ["ann", "bob"] { _ = try daemon.provision(name) }
        let first = try daemon.connect()
        guard case .backup(let info) = try first.request(ControlRequest.backupBegin, as: ControlResponse.self) else {
            throw HarnessError("backupBegin")
        }
        #expect(info.users == 2 && info.size > 0 && info.sha256.count == 64, "\(info)")
        // Held by its descriptor only: nothing in the state directory, one open copy in the daemon.
        #expect(Self.copiesOnDisk(daemon.stateDirectory).isEmpty)
        #expect(try Self.openCopies(daemon).count == 1)
        guard case .backupChunk(let chunk) = try first.request(ControlRequest.backupRead(id: info.id, offset: 0), as: ControlResponse.self) else {
            throw HarnessError("backupRead")
        }
        #expect(chunk.offset == 0 && Int64(chunk.data.count) == min(info.size, Int64(BackupLimits.chunkBytes)))
        #expect(Array(chunk.data.prefix(16)) == Array("SQLite format 3\0".utf8))
        // One per connection; another connection cannot read it.
        let again = try first.request(ControlRequest.backupBegin, as: ControlResponse.self)
        #expect(Self.isError(again, .conflict), "\(again)")
        let other = try daemon.connect()
        let foreign = try other.request(ControlRequest.backupRead(id: info.id, offset: 0), as: ControlResponse.self)
        #expect(Self.isError(foreign, .notFound), "\(foreign)")
        // Two in progress per daemon; the third waits for one of them.
        guard case .backup = try other.request(ControlRequest.backupBegin, as: ControlResponse.self) else { throw HarnessError("second backup") }
        let third = try daemon.control(.backupBegin)
        #expect(Self.isError(third, .unavailable, containing: "2 backups are in progress already"), "\(third)")
        #expect(try Self.openCopies(daemon).count == 2)

        // Closed mid-backup: the copy goes (its space is back), the backup is audited as abandoned.
        first.close()
        other.close()
        #expect(try Self.eventually { try Self.audit(daemon).count == 2 }, "two backups audited as they ended")
        #expect(try Self.openCopies(daemon).isEmpty)
        let records = try Self.audit(daemon)
        #expect(records.allSatisfy { $0.outcome == "abandoned" }, "\(records)")
        let described = records.contains { $0.reason?.hasPrefix("\(info.size) bytes, 2 users, taken at ") == true && $0.reason?.contains(info.sha256) == true }
        #expect(described, "\(records)")
        #expect(records.allSatisfy { $0.reason?.contains("the connection closed before the client ended the backup") == true })
        // The slots came back with them.
        guard case .backup = try daemon.control(.backupBegin) else { throw HarnessError("a backup after the others ended") }
    }

    @Test("a daemon that died while copying leaves a file: the next start removes it before it is ready")
    func staleCopiesGoAtStart() throws {
        let daemon = try DaemonProcess()
        daemon.kill()
        let stale = daemon.stateDirectory + "/backup-in-progress-00112233aabbccdd.sqlite"
        for path in [stale, stale + "-journal"] {
            #expect(FileManager.default.createFile(atPath: path, contents: Data("cut short".utf8)))
        }
        try daemon.start()
        #expect(Self.copiesOnDisk(daemon.stateDirectory).isEmpty)
        #expect(daemon.log.contains("removed the copy of a backup cut short"), "\(daemon.log.suffix(2000))")
    }

    @Test("the state directory full: a clear error that names it, nothing kept (no file, no descriptor), the daemon serving; with space again a backup works")
    func stateDirectoryFull() throws {
        let fs = try SmallFileSystem(.tmpfs, kibibytes: 2048)
        defer { fs.unmount() }
        let state = fs.mountPoint + "/state"
        let daemon = try DaemonProcess(start: false)
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8).split(separator: "\n")
            .map { $0.hasPrefix("state_directory") ? "state_directory = \(state)" : String($0) }
        try config.joined(separator: "\n").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        defer { daemon.kill() }   // before the unmount
        for i in 0..<41 { _ = try daemon.provision("user\(i)") }
        try fs.fill()

        let refused = try daemon.control(.backupBegin)
        guard case .error(.unavailable, let message) = refused else { throw HarnessError("expected a refusal: \(refused)") }
        #expect(message.hasPrefix("no space left in the state directory \(state) for the copy of the store"), "\(message)")
        #expect(message.hasSuffix("free space there and try again; nothing was kept"), "\(message)")
        #expect(Self.copiesOnDisk(state).isEmpty)
        #expect(try Self.openCopies(daemon).isEmpty)
        #expect(try daemon.control(.ping) == .ok)

        try fs.free()
        let connection = try daemon.connect()
        defer { connection.close() }
        guard case .backup(let info) = try connection.request(ControlRequest.backupBegin, as: ControlResponse.self) else {
            throw HarnessError("no backup once there is space")
        }
        #expect(info.users == 41)
    }

    @Test("the destination's disk full: twofoldctl says so, leaves no file, and the daemon drops its copy (audited as abandoned)")
    func destinationFull() throws {
        let daemon = try DaemonProcess()
        for i in 0..<20 { _ = try daemon.provision("user\(i)") }
        let fs = try SmallFileSystem(.tmpfs, kibibytes: 1024)
        defer { fs.unmount() }
        try fs.fill()
        let cli = try run([TestPaths.twofoldctl, "backup", "--output", fs.mountPoint + "/b.sqlite", "--socket", daemon.socketPath])
        #expect(cli.status == 1 && cli.output.contains("cannot write the backup to \(fs.mountPoint): no space left on the device; nothing was written"),
                "\(cli.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fs.mountPoint) == ["filler"])
        #expect(try Self.eventually { try Self.audit(daemon).map(\.outcome) == ["abandoned"] }, "the daemon's copy went with the connection")
        #expect(try Self.openCopies(daemon).isEmpty)
    }

    @Test("a daemon on PostgreSQL refuses, naming the database's own backups; twofoldctl writes nothing")
    func postgresRefuses() throws {
        let cluster = try PostgresCluster()
        let key = try SharedKey()
        let daemon = try DaemonProcess.onPostgres(cluster, database: try cluster.createScratchDatabase(), keyFile: key.path)
        let refused = try daemon.control(.backupBegin)
        guard case .error(.invalidRequest, let message) = refused else { throw HarnessError("expected a refusal: \(refused)") }
        #expect(message.hasPrefix("this twofoldd keeps its state in PostgreSQL (postgresql://"), "\(message)")
        #expect(message.contains("pg_dump") && message.contains("base backups with a WAL archive") && message.contains("README, \"Backup and restore\""),
                "\(message)")
        let output = daemon.directory + "/backup.sqlite"
        let cli = try run([TestPaths.twofoldctl, "backup", "--output", output, "--socket", daemon.socketPath])
        #expect(cli.status == 1 && cli.output.contains("pg_dump"), "\(cli.output)")
        let left = try FileManager.default.contentsOfDirectory(atPath: daemon.directory).filter { $0.contains("backup") }
        #expect(left.isEmpty, "\(left)")
    }
}

extension HeavyDaemonSuites {
    /// A relay keeps no store: it answers a backup itself, with the tier's database's own backups.
    @Suite struct BackupRelayTests {
        @Test("a relay refuses a backup itself, naming the tier's PostgreSQL backups; a non-root caller there is refused first")
        func relayRefuses() throws {
            let fleet = try Fleet(servers: 1)
            let relay = try fleet.relay("web1")
            let refused = try relay.control(.backupBegin)
            guard case .error(.invalidRequest, let message) = refused else { throw HarnessError("expected a refusal: \(refused)") }
            #expect(message.hasPrefix("this twofoldd is a relay and keeps no store") && message.contains("pg_dump"), "\(message)")
            let user = try TestUser.user
            let cli = try run(user.setpriv + [TestPaths.twofoldctl, "backup", "--output", "/tmp/never-written", "--socket", relay.socketPath])
            #expect(cli.status == 4 && cli.output.contains("the relay answers this host's root only"), "\(cli.output)")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written"))
        }
    }
}
