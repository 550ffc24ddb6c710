import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A streaming standby of a private cluster (`PostgresCluster.startPrivate()`), for failover tests:
/// made with `pg_basebackup -R` (it streams from the primary at once), on a port of its own, in a
/// directory beside the primary's. `takeOver()` is what an admin's failover tool does when the
/// primary is gone: the standby is started on the primary's port (the address the daemons and
/// PgBouncer know, as a virtual IP would move) and promoted, on a new timeline.
public final class PostgresStandby: @unchecked Sendable {
    public let dataDirectory: String
    private let primary: PostgresCluster
    private let logFile: String

    init(primary: PostgresCluster, dataDirectory: String, logFile: String) {
        self.primary = primary
        self.dataDirectory = dataDirectory
        self.logFile = logFile
    }

    /// pg_ctl or another program of the cluster's as the postgres user.
    @discardableResult
    static func asPostgres(_ argv: [String]) throws -> String {
        let result = try ChildProcess.run(["/usr/sbin/runuser", "-u", "postgres", "--"] + argv)
        guard result.status == 0 else {
            throw ChildProcessError("\((argv.first as NSString?)?.lastPathComponent ?? "") \(argv.dropFirst().joined(separator: " ")) exited \(result.status): \(result.output)")
        }
        return result.output
    }

    private func pgCtl(_ arguments: [String]) throws {
        try Self.asPostgres([primary.binDirectory + "/pg_ctl", "-D", dataDirectory] + arguments)
    }

    /// Starts the standby (`pg_ctl start -w`: returns once it accepts read-only connections).
    public func start() throws {
        try pgCtl(["start", "-w", "-t", "60", "-l", logFile])
    }

    /// Stops it, as a crash would (it keeps what it had received).
    public func stop() throws {
        try pgCtl(["stop", "-m", "immediate", "-w", "-t", "60"])
    }

    /// Waits until the standby has replayed everything the primary had written when this was called
    /// (the primary's current WAL position), polling the standby's replay position.
    public func waitCaughtUp() throws {
        let target = try primary.psql("SELECT pg_current_wal_lsn()")
        let standbyURL = try url()
        for _ in 0..<600 {
            let behind = try primary.psql("SELECT pg_wal_lsn_diff('\(target)', pg_last_wal_replay_lsn()) > 0", url: standbyURL)
            if behind == "f" { return }
            usleep(50_000)
        }
        throw ChildProcessError("the standby did not catch up with \(target) within 30 s")
    }

    /// The standby's port, from the include file pg-cluster.sh's configuration reads.
    public var port: Int {
        get throws {
            let text = try String(contentsOfFile: dataDirectory + "/twofold-port.conf", encoding: .utf8)
            guard let port = Int(text.replacingOccurrences(of: "port = ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw ChildProcessError("no port in \(dataDirectory)/twofold-port.conf")
            }
            return port
        }
    }

    /// The `twofold` database on the standby, as the primary's URL names it but on the standby's port.
    public func url() throws -> String {
        guard var components = URLComponents(string: primary.url) else { throw ChildProcessError("bad URL \(primary.url)") }
        components.port = try port
        return components.string ?? primary.url
    }

    /// The failover: with the primary stopped, the standby (stopped or running) is started on the
    /// primary's port and promoted (`pg_ctl promote -w`), so the daemons and PgBouncer reach it at
    /// the address they know. Returns the new timeline.
    @discardableResult
    public func takeOver() throws -> Int {
        _ = try? pgCtl(["stop", "-m", "fast", "-w", "-t", "60"])
        guard let primaryPort = URLComponents(string: primary.url)?.port else { throw ChildProcessError("no port in \(primary.url)") }
        try Self.asPostgres(["/bin/sh", "-c", "echo \"port = \(primaryPort)\" > \"$1\"", "_", dataDirectory + "/twofold-port.conf"])
        try start()
        try pgCtl(["promote", "-w", "-t", "60"])
        // The primary's URL now reaches the promoted standby.
        return try primary.timeline()
    }
}

extension PostgresCluster {
    /// The server's current timeline (from the name of the WAL file being written).
    public func timeline() throws -> Int {
        let walFile = try psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        guard let timeline = Int(walFile.prefix(8), radix: 16) else { throw ChildProcessError("cannot read the timeline from \(walFile)") }
        return timeline
    }

    /// A streaming standby of this cluster, started and streaming (`pg_basebackup -R -X stream`, as
    /// the postgres user over the cluster's socket), in `<socket directory>/../standby-N`. Needs a
    /// cluster that knows its socket directory (a private one).
    public func startStandby() throws -> PostgresStandby {
        guard let socketDirectory, let port = URLComponents(string: url)?.port else {
            throw ChildProcessError("a standby needs the cluster's socket directory (TWOFOLD_PG_SOCKET_DIR) and port")
        }
        let parent = (socketDirectory as NSString).deletingLastPathComponent
        let data = parent + "/standby-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let chowned = try ChildProcess.run(["/bin/chown", "postgres:postgres", data])
        guard chowned.status == 0 else { throw ChildProcessError("chown \(data): \(chowned.output)") }
        try PostgresStandby.asPostgres([binDirectory + "/pg_basebackup", "-D", data, "-h", socketDirectory, "-p", String(port),
                                        "-U", "postgres", "-R", "-X", "stream", "-c", "fast"])
        // Its own port: the primary's is taken while both run.
        let standbyPort = try Self.freePort()
        try PostgresStandby.asPostgres(["/bin/sh", "-c", "echo \"port = \(standbyPort)\" > \"$1\"", "_", data + "/twofold-port.conf"])
        let standby = PostgresStandby(primary: self, dataDirectory: data, logFile: data + ".log")
        _ = try ChildProcess.run(["/usr/bin/install", "-o", "postgres", "-m", "0600", "/dev/null", data + ".log"])
        try standby.start()
        return standby
    }

    /// A TCP port the kernel considers free on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ChildProcessError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ChildProcessError("cannot bind a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
