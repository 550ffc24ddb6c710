import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// Schemas v5 to v9 on PostgreSQL: a v4 database (as the code before the host registry wrote it),
/// a v5 one (before hosts moved in), a v6 one (before delivered codes), a v7 one (before keys)
/// and a v8 one (before SSH keys) open as v9 with everything kept (and the users' SSH key rule
/// column added, with its CHECK), and the last success's host is looked up in the partial index.
@Suite struct PostgresSchemaV5Tests {
    @Test(arguments: ["v4", "v5", "v6", "v7", "v8"]) func anOlderDatabaseMigratesToV9KeepingItsData(_ version: String) async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let sealer = Sealer(keys: keys)
            let check = PostgresV3Database.literal(try KeyCheck.seal(with: sealer))
            let pepper = try SecretBytes(randomCount: 32)
            let sealedPepper = PostgresV3Database.literal(try StoreMeta.sealPepper(pepper, with: sealer))
            try await offPool {
                let steps = [PostgresSchema.tablesV5, PostgresSchema.tablesV6, PostgresSchema.tablesV7, PostgresSchema.tablesV8]
                let later = steps.prefix(["v4", "v5", "v6", "v7", "v8"].firstIndex(of: version)!).flatMap { $0 }
                // A v7 database has a user with a contact; a v8 one, a key too.
                let contact = ["v7", "v8"].contains(version) ? """
                    INSERT INTO users (name) VALUES ('carol');
                    INSERT INTO contacts (user_name, channel, value, added_at, verified_at) VALUES ('carol', 'sms', '+4915112345678', 1, 1);
                    """ : ""
                let key = version == "v8" ? """
                    INSERT INTO fido2_keys (user_name, name, credential_id, algorithm, public_key, sign_count, aaguid, added_at)
                        VALUES ('carol', 'blue', '\\x0102', -8, '\\x\(String(repeating: "07", count: 32))', 5, '\\x\(String(repeating: "00", count: 16))', 6);
                    """ : ""
                let tables = PostgresSchema.tablesV3 + [PostgresSchema.metaTable] + later
                try cluster.psql(tables.map { $0.sql + ";" }.joined(separator: "\n") + """

                    INSERT INTO twofold_schema (version, key_check) VALUES ('\(version)', \(check));
                    INSERT INTO twofold_meta (key, value) VALUES ('\(StoreMeta.keyCheck)', \(check)), ('\(StoreMeta.pepper)', \(sealedPepper));
                    INSERT INTO twofold_timeline (timeline) SELECT \(PostgresTimeline.currentSQL);
                    INSERT INTO users (name, requirement) VALUES ('bob', 'required');
                    INSERT INTO settings (key, value) VALUES ('policy', '{}');
                    INSERT INTO audit (time, action, user_name, outcome) SELECT 1000 + i, 'verify', 'alice', 'success' FROM generate_series(0, 4) i;
                    """ + contact + key, url: cluster.url(database: database))
            }
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "\(version) 1 checks")

            let store = try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: keys))
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "v9 1 checks")
            #expect(try await store.recoveryPepper()?.constantTimeEquals(pepper) == true)
            try await expectV4DataKeptAndV5Working(store)
            if version == "v7" { #expect(try await store.user("carol")?.kinds == [.sms]) }
            if version == "v8" { #expect(try await store.user("carol")?.keys.map(\.signCount) == [5]) }
            // The rule's column has its CHECK on a migrated database too.
            await #expect(throws: (any Error).self) {
                try await offPool { try cluster.psql("UPDATE users SET ssh_key_rule = 'rsa' WHERE name = 'bob'", url: cluster.url(database: database)) }
            }
            #expect(try await store.user("bob")?.sshKeyRule == SSHKeyRule(types: .any, verifyRequired: true))
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

    @Test func theSSHKeysReadIsAnIndexRangeWithoutASort() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: try makeKeys(in: dir))).close()
        }
        // An empty table is scanned whatever the index (and a bitmap scan then sorted is as cheap for
        // the planner's guess of 2 rows); with those off the plan shows the index, in its order.
        let plan = try await offPool {
            try cluster.psql("""
                SET enable_seqscan = off;
                SET enable_bitmapscan = off;
                PREPARE keys(text) AS \(PostgresStore.sshKeysQuery("alice").sql);
                EXPLAIN EXECUTE keys('alice');
                """, url: cluster.url(database: database))
        }
        #expect(plan.contains("Index Scan using ssh_keys_pkey") && !plan.contains("Sort"), "\(plan)")
    }

    /// PostgreSQL's CHECK of the users' SSH key rule, which SQLite's says word for word (SchemaTests).
    static var ruleCheck: String {
        PostgresSchema.tablesV9.map(\.sql).first { $0.contains("ssh_key_rule") }.flatMap { sql in
            sql.range(of: "CHECK (").map { String(sql[$0.lowerBound...]) }
        } ?? "(no CHECK of ssh_key_rule in tablesV9)"
    }

    @Test func sshdsReadWithTheRuleIsTheSameRangeAndTheUsersRowByItsKey() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: try makeKeys(in: dir))).close()
        }
        let plan = try await offPool {
            try cluster.psql("""
                SET enable_seqscan = off;
                SET enable_bitmapscan = off;
                PREPARE keys(text) AS \(PostgresStore.authorizedSSHKeysQuery("alice").sql);
                EXPLAIN EXECUTE keys('alice');
                """, url: cluster.url(database: database))
        }
        #expect(plan.contains("Index Scan using ssh_keys_pkey") && plan.contains("Index Scan using users_pkey") && !plan.contains("Sort"),
                "\(plan)")
    }
}
