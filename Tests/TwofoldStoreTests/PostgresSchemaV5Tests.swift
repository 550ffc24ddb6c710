import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// Schemas v5 to v8 on PostgreSQL: a v4 database (as the code before the host registry wrote it),
/// a v5 one (before hosts moved in), a v6 one (before delivered codes) and a v7 one (before
/// keys) open as v8 with everything kept, and the last success's host is looked up in the
/// partial index.
@Suite struct PostgresSchemaV5Tests {
    @Test(arguments: ["v4", "v5", "v6", "v7"]) func anOlderDatabaseMigratesToV8KeepingItsData(_ version: String) async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let sealer = Sealer(keys: keys)
            let check = PostgresV3Database.literal(try KeyCheck.seal(with: sealer))
            let pepper = try SecretBytes(randomCount: 32)
            let sealedPepper = PostgresV3Database.literal(try StoreMeta.sealPepper(pepper, with: sealer))
            try await offPool {
                let steps = [PostgresSchema.tablesV5, PostgresSchema.tablesV6, PostgresSchema.tablesV7]
                let later = steps.prefix(["v4", "v5", "v6", "v7"].firstIndex(of: version)!).flatMap { $0 }
                // A v7 database has a user with a contact.
                let contact = version == "v7" ? """
                    INSERT INTO users (name) VALUES ('carol');
                    INSERT INTO contacts (user_name, channel, value, added_at, verified_at) VALUES ('carol', 'sms', '+4915112345678', 1, 1);
                    """ : ""
                let tables = PostgresSchema.tablesV3 + [PostgresSchema.metaTable] + later
                try cluster.psql(tables.map { $0.sql + ";" }.joined(separator: "\n") + """

                    INSERT INTO twofold_schema (version, key_check) VALUES ('\(version)', \(check));
                    INSERT INTO twofold_meta (key, value) VALUES ('\(StoreMeta.keyCheck)', \(check)), ('\(StoreMeta.pepper)', \(sealedPepper));
                    INSERT INTO twofold_timeline (timeline) SELECT \(PostgresTimeline.currentSQL);
                    INSERT INTO users (name, requirement) VALUES ('bob', 'required');
                    INSERT INTO settings (key, value) VALUES ('policy', '{}');
                    INSERT INTO audit (time, action, user_name, outcome) SELECT 1000 + i, 'verify', 'alice', 'success' FROM generate_series(0, 4) i;
                    """ + contact, url: cluster.url(database: database))
            }
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "\(version) 1 checks")

            let store = try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: keys))
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "v8 1 checks")
            #expect(try await store.recoveryPepper()?.constantTimeEquals(pepper) == true)
            try await expectV4DataKeptAndV5Working(store)
            if version == "v7" { #expect(try await store.user("carol")?.kinds == [.sms]) }
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
