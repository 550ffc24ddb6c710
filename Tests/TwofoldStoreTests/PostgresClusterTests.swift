import Foundation
import Testing
import TwofoldTestSupport

/// The PostgreSQL harness itself (scripts/pg-cluster.sh and PostgresCluster): the store's PostgreSQL
/// tests stand on it. Without a cluster these fail, they do not skip.
@Suite struct PostgresClusterTests {
    @Test func connectsDirectlyAndThroughPgBouncer() throws {
        let pg = try PostgresCluster()
        #expect(try pg.psql("SELECT 1") == "1")
        #expect(try pg.psql("SELECT current_user, current_database()") == "twofold|twofold")
        // The role's own setting, not the session's: it holds through a transaction pooler too.
        #expect(try pg.psql("SHOW synchronous_commit") == "on")
        // Through PgBouncer in transaction pooling mode: statements, an explicit transaction, and
        // a session setting that must not be relied on (another client may get the server connection).
        #expect(try pg.psql("SELECT 1", url: pg.bouncerURL) == "1")
        #expect(try pg.psql("BEGIN; SELECT 40 + 2; COMMIT;", url: pg.bouncerURL) == "42")
        #expect(try pg.psql("SHOW synchronous_commit", url: pg.bouncerURL) == "on")
        let mode = try pg.psql("SHOW fsync")
        #expect(mode == "on")
        // The password is never on psql's command line: it is read from the password file.
        #expect(try !pg.password.isEmpty)
    }

    @Test func scratchDatabaseIsCreatedAndDropped() throws {
        let name: String
        do {
            let pg = try PostgresCluster()
            name = try pg.createScratchDatabase()
            #expect(try pg.psql("SELECT current_database()", url: pg.url(database: name)) == name)
            #expect(try pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7); SELECT x FROM t",
                                url: pg.bouncerURL(database: name)) == "7")
            // The grant reaches new databases through template1.
            #expect(try pg.psql("SELECT timeline_id > 0 FROM pg_control_checkpoint()", url: pg.url(database: name)) == "t")
        }
        // The first PostgresCluster is gone: its database with it.
        let pg = try PostgresCluster()
        #expect(try pg.psql("SELECT count(*) FROM pg_database WHERE datname = '\(name)'") == "0")
    }

    @Test func timelineIsReadableByTheRoleDirectlyAndThroughPgBouncer() throws {
        let pg = try PostgresCluster()
        let direct = try pg.psql("SELECT timeline_id FROM pg_control_checkpoint()")
        let pooled = try pg.psql("SELECT timeline_id FROM pg_control_checkpoint()", url: pg.bouncerURL)
        #expect(Int(direct).map { $0 >= 1 } == true, "timeline: \(direct)")
        #expect(direct == pooled)
        #expect(try pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == "f")
    }

    /// On a cluster of its own: the shared one stays up for the other tests.
    @Test func stopImmediateAndStartAgainDirectlyAndThroughPgBouncer() throws {
        let pg = try PostgresCluster.startPrivate()
        try pg.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
        try pg.stopImmediate()
        #expect(!pg.isReady)
        #expect(throws: (any Error).self) { try pg.psql("SELECT 1") }
        try pg.start()
        #expect(pg.isReady)
        // Committed before the crash, there after recovery; PgBouncer reconnects by itself.
        #expect(try pg.psql("SELECT x FROM kept") == "1")
        #expect(try pg.psql("SELECT x FROM kept", url: pg.bouncerURL) == "1")
    }
}
