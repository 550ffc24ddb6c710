import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// A real failover: a standby made with pg_basebackup misses a commit of the primary (it is down
/// when the commit is made), the primary crashes, the standby is promoted. A store on the promoted
/// standby must refuse the code whose acceptance was lost, and audit the failover.
@Suite struct PostgresFailoverTests {
    /// The standby's data directory next to the private cluster's, on a port of its own.
    private struct Standby {
        let cluster: PostgresCluster
        let data: String
        let port: Int

        /// pg_ctl (or another PostgreSQL program) as the postgres user.
        func asPostgres(_ program: String, _ arguments: [String]) throws {
            let result = try ChildProcess.run(["/usr/sbin/runuser", "-u", "postgres", "--", cluster.binDirectory + "/" + program] + arguments)
            guard result.status == 0 else { throw ChildProcessError("\(program) \(arguments.first ?? "") exited \(result.status): \(result.output)") }
        }

        func pgCtl(_ arguments: [String]) throws {
            try asPostgres("pg_ctl", ["-D", data] + arguments)
        }

        /// A base backup of the cluster through its socket, set up to stream from it (-R).
        static func make(of cluster: PostgresCluster) throws -> Standby {
            let directory = (cluster.dataDirectory as NSString).deletingLastPathComponent
            let primaryPort = URLComponents(string: cluster.url)?.port ?? 5432
            let port = primaryPort + 1_000 <= 65_535 ? primaryPort + 1_000 : primaryPort - 1_000
            let standby = Standby(cluster: cluster, data: directory + "/standby", port: port)
            try standby.asPostgres("pg_basebackup", ["-D", standby.data, "-h", directory, "-p", String(primaryPort), "-U", "postgres",
                                                     "-X", "stream", "-R", "--checkpoint=fast"])
            // The copied configuration names the primary's port.
            let portFile = standby.data + "/twofold-port.conf"
            let result = try ChildProcess.run(["/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/tee", portFile], input: "port = \(port)\n")
            guard result.status == 0 else { throw ChildProcessError("cannot write \(portFile)") }
            return standby
        }
    }

    @Test func aPromotedStandbyThatMissedACommitRefusesTheLostCode() async throws {
        let cluster = try PostgresCluster.startPrivate()
        let standby = try Standby.make(of: cluster)
        defer { try? standby.pgCtl(["stop", "-m", "immediate", "-w"]) }
        let keys = try await withTempDir { dir in try makeKeys(in: dir) }
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let step = now / 1_000 / 30

        // Enrolled while the standby streams; then the standby stops and the primary accepts a step.
        try standby.pgCtl(["start", "-w", "-t", "60", "-l", standby.data + "/../standby.log"])
        let primary = try await PostgresStoreTests.open(cluster, "twofold", keys: keys)
        try await enroll(primary, "alice")
        try await enroll(primary, "bob", verify: VerifyState(lastStep: step - 10))
        // Wait until the standby has replayed the enrollments, then stop it.
        try await waitForReplay(cluster, standbyPort: standby.port)
        try standby.pgCtl(["stop", "-m", "fast", "-w"])
        #expect(try await primary.commit([accept("alice", step: step, at: now)]) == [.applied])
        try await primary.close()
        try cluster.stopImmediate()

        // The standby comes up without the commit and is promoted: a new timeline.
        try standby.pgCtl(["start", "-w", "-t", "60", "-l", standby.data + "/../standby.log"])
        try standby.pgCtl(["promote", "-w", "-t", "60"])
        var configuration = try PostgresStoreConfiguration(url: "postgresql://twofold@127.0.0.1:\(standby.port)/twofold", password: try cluster.password)
        configuration.connectTimeout = .seconds(5)
        let promoted = try await PostgresStore(configuration: configuration, keys: keys)
        #expect(try await promoted.user("alice")?.verify.lastStep == nil, "the standby was not supposed to have the commit")
        // The code accepted on the lost primary is refused; so is the next step's (the window's look-ahead).
        #expect(try await promoted.commit([accept("alice", step: step, at: now)]) == [.conflict])
        #expect(try await promoted.commit([accept("alice", step: step + 1, at: now)]) == [.conflict])
        #expect(try await promoted.user("bob")?.verify.lastStep == step + 1)
        let audit = try await promoted.audit(AuditQuery(outcome: "applied"))
        #expect(audit.map(\.action) == ["failover"])
        #expect(audit.first?.reason?.hasPrefix("database failed over: timeline 1 -> 2;") == true, "\(String(describing: audit.first?.reason))")
        #expect(try await promoted.commit([accept("alice", step: step + 2, at: now + 30_000)]) == [.applied])
        try await promoted.close()
    }

    /// Polls the standby (as postgres, over the socket) until it has replayed what the primary wrote.
    private func waitForReplay(_ cluster: PostgresCluster, standbyPort: Int) async throws {
        let directory = (cluster.dataDirectory as NSString).deletingLastPathComponent
        let target = try cluster.psql("SELECT pg_current_wal_lsn()")
        for _ in 0..<100 {
            let result = try ChildProcess.run(["/usr/sbin/runuser", "-u", "postgres", "--", cluster.binDirectory + "/psql", "-X", "-A", "-t",
                                               "-h", directory, "-p", String(standbyPort), "-d", "postgres",
                                               "-c", "SELECT pg_last_wal_replay_lsn() >= '\(target)'::pg_lsn"])
            if result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "t" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ChildProcessError("the standby did not replay up to \(target)")
    }
}
