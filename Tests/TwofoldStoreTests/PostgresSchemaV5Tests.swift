import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// Schemas v5 to v7 on PostgreSQL: a v4 database (as the code before the host registry wrote it),
/// a v5 one (before hosts moved in) and a v6 one (before delivered codes) open as v7 with
/// everything kept, and the last success's host is looked up in the partial index.
@Suite struct PostgresSchemaV5Tests {
    @Test(arguments: ["v4", "v5", "v6"]) func anOlderDatabaseMigratesToV7KeepingItsData(_ version: String) async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let sealer = Sealer(keys: keys)
            let check = PostgresV3Database.literal(try KeyCheck.seal(with: sealer))
            let pepper = try SecretBytes(randomCount: 32)
            let sealedPepper = PostgresV3Database.literal(try StoreMeta.sealPepper(pepper, with: sealer))
            try await offPool {
                let later = version == "v4" ? [] : PostgresSchema.tablesV5 + (version == "v6" ? PostgresSchema.tablesV6 : [])
                let tables = PostgresSchema.tablesV3 + [PostgresSchema.metaTable] + later
                try cluster.psql(tables.map { $0.sql + ";" }.joined(separator: "\n") + """

                    INSERT INTO twofold_schema (version, key_check) VALUES ('\(version)', \(check));
                    INSERT INTO twofold_meta (key, value) VALUES ('\(StoreMeta.keyCheck)', \(check)), ('\(StoreMeta.pepper)', \(sealedPepper));
                    INSERT INTO twofold_timeline (timeline) SELECT \(PostgresTimeline.currentSQL);
                    INSERT INTO users (name, requirement) VALUES ('bob', 'required');
                    INSERT INTO settings (key, value) VALUES ('policy', '{}');
                    INSERT INTO audit (time, action, user_name, outcome) SELECT 1000 + i, 'verify', 'alice', 'success' FROM generate_series(0, 4) i;
                    """, url: cluster.url(database: database))
            }
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "\(version) 1 checks")

            let store = try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: keys))
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "v7 1 checks")
            #expect(try await store.recoveryPepper()?.constantTimeEquals(pepper) == true)
            try await expectV4DataKeptAndV5Working(store)
            try await store.appendMovedAudit([], host: "h-1", through: 7, previous: nil)
            #expect(try await store.movedAuditMark(host: "h-1") == 7)
            try await store.close()
        }
    }

    @Test func lastSuccessHostsLooksEachUserUpInThePartialIndex() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: try makeKeys(in: dir))).close()
        }
        // The planner may use it (its WHERE implies the index's); with sequential scans off it must.
        let plan = try await offPool {
            try cluster.psql("""
                SET enable_seqscan = off;
                PREPARE hosts(text[]) AS \(PostgresStore.lastSuccessHostsQuery(["alice"]).sql);
                EXPLAIN EXECUTE hosts('{alice,bob}');
                """, url: cluster.url(database: database))
        }
        #expect(plan.contains("audit_host_logins"), "\(plan)")
    }
}
