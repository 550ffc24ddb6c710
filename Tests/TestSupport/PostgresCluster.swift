import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The private PostgreSQL cluster and PgBouncer that `scripts/pg-cluster.sh` starts (`make check` does,
/// through scripts/run-tests.sh), found through the environment it prints:
/// `TWOFOLD_PG_URL`, `TWOFOLD_PG_PASSWORD_FILE`, `TWOFOLD_PGBOUNCER_URL`, `TWOFOLD_PG_BIN`,
/// `TWOFOLD_PG_DATA` (and `TWOFOLD_PG_PASSFILE`, a libpq password file, if it is there).
///
/// A test that needs PostgreSQL and finds no cluster fails: it never skips (issue 12: in CI a missing
/// database is a failure). The password is read from its file and handed to psql through a password
/// file (PGPASSFILE), never on a command line.
///
/// Databases made with `createScratchDatabase()` are dropped when this object goes away.
public final class PostgresCluster: @unchecked Sendable {
    /// libpq URI of the database `twofold` as the role `twofold`, straight to PostgreSQL.
    public let url: String
    /// The same through PgBouncer (transaction pooling).
    public let bouncerURL: String
    public let passwordFile: String
    /// A libpq password file (0600) with the role's password for 127.0.0.1, any port.
    public let passFile: String
    /// PostgreSQL's programs: psql, pg_ctl, pg_isready, pg_basebackup…
    public let binDirectory: String
    public let dataDirectory: String
    /// The directory of PostgreSQL's Unix socket (and of the cluster's files), if known.
    public let socketDirectory: String?

    private let lock = NSLockLike()
    private var scratchDatabases: [String] = []
    private var ownPassFileDirectory: String?
    /// Set for a cluster of its own (`startPrivate()`): stopped and removed at deinit.
    private var privateDirectory: String?

    public static let missingMessage = """
        No PostgreSQL for the tests: TWOFOLD_PG_URL is not set. Start the private cluster and export its \
        environment: d=$(mktemp -d) && chmod 755 $d && bash scripts/pg-cluster.sh start $d/pg && \
        set -a && eval "$(bash scripts/pg-cluster.sh env $d/pg)" && set +a (make check does this through \
        scripts/run-tests.sh; stop it with scripts/pg-cluster.sh stop $d/pg).
        """

    /// The cluster named by the environment; throws (the test fails) when there is none.
    public init(environment: [String: String] = ChildProcess.currentEnvironment()) throws {
        func required(_ name: String) throws -> String {
            guard let value = environment[name], !value.isEmpty else {
                throw ChildProcessError(name == "TWOFOLD_PG_URL"
                    ? Self.missingMessage
                    : "\(name) is not set but TWOFOLD_PG_URL is: export all of `scripts/pg-cluster.sh env DIR`")
            }
            return value
        }
        url = try required("TWOFOLD_PG_URL")
        bouncerURL = try required("TWOFOLD_PGBOUNCER_URL")
        passwordFile = try required("TWOFOLD_PG_PASSWORD_FILE")
        binDirectory = try required("TWOFOLD_PG_BIN")
        dataDirectory = try required("TWOFOLD_PG_DATA")
        socketDirectory = environment["TWOFOLD_PG_SOCKET_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        if let given = environment["TWOFOLD_PG_PASSFILE"], !given.isEmpty {
            passFile = given
        } else {
            // Write one: 127.0.0.1, any port, any database, role twofold (libpq wants : and \ escaped).
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-pgpass-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let password = try Self.readPassword(passwordFile)
            let escaped = password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
            let path = dir + "/pgpass"
            guard FileManager.default.createFile(atPath: path, contents: Data("127.0.0.1:*:*:twofold:\(escaped)\n".utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw ChildProcessError("cannot write \(path)")
            }
            passFile = path
            ownPassFileDirectory = dir
        }
    }

    /// A cluster and PgBouncer of the caller's own (scripts/pg-cluster.sh under a new temporary
    /// directory, about a second), stopped and removed when the object goes away: for tests that stop,
    /// crash or promote PostgreSQL, which must not do that to the cluster every other test shares.
    public static func startPrivate() throws -> PostgresCluster {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let script = TestPaths.root + "/scripts/pg-cluster.sh"
        let started = try ChildProcess.run(["/bin/bash", script, "start", dir + "/pg"])
        guard started.status == 0 else {
            _ = try? ChildProcess.run(["/bin/bash", script, "stop", dir + "/pg"])
            try? FileManager.default.removeItem(atPath: dir)
            throw ChildProcessError("scripts/pg-cluster.sh start failed (\(started.status)): \(started.output)")
        }
        let env = try ChildProcess.run(["/bin/bash", script, "env", dir + "/pg"])
        var environment: [String: String] = [:]
        for line in env.output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        let cluster = try PostgresCluster(environment: environment)
        cluster.privateDirectory = dir
        return cluster
    }

    deinit {
        if let privateDirectory {
            _ = try? ChildProcess.run(["/bin/bash", TestPaths.root + "/scripts/pg-cluster.sh", "stop", privateDirectory + "/pg"])
            try? FileManager.default.removeItem(atPath: privateDirectory)
            return
        }
        for name in scratchDatabases {
            _ = try? psql("DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)")
        }
        if let ownPassFileDirectory { try? FileManager.default.removeItem(atPath: ownPassFileDirectory) }
    }

    /// The role's password, from its file.
    public var password: String {
        get throws { try Self.readPassword(passwordFile) }
    }

    private static func readPassword(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ChildProcessError("cannot read the PostgreSQL password file \(path)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `url` with another database.
    public func url(database: String) -> String { Self.replacingDatabase(in: url, with: database) }
    /// `bouncerURL` with another database (PgBouncer's `*` entry forwards every database).
    public func bouncerURL(database: String) -> String { Self.replacingDatabase(in: bouncerURL, with: database) }

    private static func replacingDatabase(in url: String, with database: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/" + database
        return components.string ?? url
    }

    /// The environment for libpq programs: the password file, a connect timeout, no PGPASSWORD.
    public var clientEnvironment: [String: String] {
        var env = ChildProcess.currentEnvironment()
        env["PGPASSWORD"] = nil
        env["PGPASSFILE"] = passFile
        env["PGCONNECT_TIMEOUT"] = "10"
        return env
    }

    /// Runs `sql` with psql (fed on stdin, ON_ERROR_STOP, unaligned tuples only) against `url`
    /// (default: the `twofold` database directly) and returns its output, trimmed. Throws with
    /// psql's output when it fails.
    @discardableResult
    public func psql(_ sql: String, url target: String? = nil) throws -> String {
        let argv = [binDirectory + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", target ?? url, "-f", "-"]
        let result = try ChildProcess.run(argv, environment: clientEnvironment, input: sql)
        let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0 else {
            throw ChildProcessError("psql exited \(result.status) for \(sql.prefix(200)): \(output)")
        }
        return output
    }

    /// A new empty database owned by `twofold` (with the pg_control_checkpoint grant, from template1),
    /// dropped when this object goes away. Returns its name; `url(database:)` gives its URL.
    public func createScratchDatabase() throws -> String {
        let name = "scratch_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try psql("CREATE DATABASE \(name) OWNER twofold")
        lock.withLock { scratchDatabases.append(name) }
        return name
    }

    /// Drops a scratch database now (connections to it are ended).
    public func dropScratchDatabase(_ name: String) throws {
        try psql("DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)")
        lock.withLock { scratchDatabases.removeAll { $0 == name } }
    }

    /// pg_ctl as the postgres user (it refuses to run as root).
    private func pgCtl(_ arguments: [String]) throws -> String {
        let argv = ["/usr/sbin/runuser", "-u", "postgres", "--", binDirectory + "/pg_ctl", "-D", dataDirectory] + arguments
        let result = try ChildProcess.run(argv)
        guard result.status == 0 else {
            throw ChildProcessError("pg_ctl \(arguments.joined(separator: " ")) exited \(result.status): \(result.output)")
        }
        return result.output
    }

    /// Stops PostgreSQL the way a crash or a power cut does (`pg_ctl stop -m immediate`): no
    /// shutdown checkpoint, clients cut off. PgBouncer keeps running.
    ///
    /// The cluster is shared by every test in the process: a test that stops it must not run
    /// alongside others that use it.
    public func stopImmediate() throws {
        _ = try pgCtl(["stop", "-m", "immediate", "-w", "-t", "60"])
    }

    /// Starts PostgreSQL again (same port, same log) and returns when it accepts connections
    /// (`pg_ctl start -w`: it waits for the server's ready state, no polling here).
    public func start() throws {
        let log = (dataDirectory as NSString).deletingLastPathComponent + "/postgresql.log"
        _ = try pgCtl(["start", "-w", "-t", "60", "-l", log])
    }

    /// True when the server accepts connections (pg_isready on the URL's host and port).
    public var isReady: Bool {
        let result = try? ChildProcess.run([binDirectory + "/pg_isready", "-q", "-d", url, "-t", "5"], environment: clientEnvironment)
        return result?.status == 0
    }
}
