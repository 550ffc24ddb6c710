import Foundation
import GRDB
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
@testable import TwofoldStore

@Suite struct SchemaTests {
    @Test func writerIsFullSyncWALWithCurrentSchema() async throws {
        try await withTempDir { dir in
            let store = try openStore(dir, keys: try makeKeys(in: dir))
            // GRDB sets NORMAL when it enables WAL; the store must have put FULL back.
            #expect(try store.writerSynchronousMode() == 2)
            #expect(try store.testingCount("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'") == 1)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier IN ('v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', 'v9')") == 9)
            #expect(try store.testingCount("SELECT count(*) FROM meta WHERE key = 'key_check'") == 1)
            try await store.close()

            // Reopening migrates nothing again, keeps one key check, and the file is private.
            let again = try openStore(dir, keys: try makeKeys(in: dir))
            #expect(try again.testingCount("SELECT count(*) FROM grdb_migrations") == 9)
            #expect(try again.testingCount("SELECT count(*) FROM meta WHERE key = 'key_check'") == 1)
            try await again.close()
            let mode = try FileManager.default.attributesOfItem(atPath: dir + "/twofold.db")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func v1DatabaseMigratesToTheSlimAuditTableKeepingEveryRecord() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            // A database as a v1 twofoldd left it: schema v1 only, with audit records and an enrollment.
            let keyCheck = try KeyCheck.seal(with: Sealer(keys: keys))
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            try Schema.migrator(keyCheck: keyCheck, sealer: Sealer(keys: keys)).migrate(queue, upTo: "v1")
            try await queue.write { db in
                for i in 0..<50 {
                    try db.execute(sql: "INSERT INTO audit (time, action, user, outcome, reason) VALUES (?, 'verify', ?, ?, ?)",
                                   arguments: [1_000 + i, i % 2 == 0 ? "alice" : "bob", i % 3 == 0 ? "failure" : "success", "r\(i)"])
                }
            }
            try queue.close()

            let store = try openStore(dir, keys: keys)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v2'") == 1)
            // audit_by_user, and v5's partial audit_host_logins (which no record without a host enters).
            #expect(try store.testingCount("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' AND name NOT LIKE 'sqlite_%'") == 2)
            #expect(try store.testingCount("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' AND name = 'audit_by_user'") == 1)
            #expect(try store.testingCount("SELECT count(*) FROM sqlite_master WHERE name = 'audit' AND sql LIKE '%AUTOINCREMENT%'") == 0)
            let all = try await store.audit(AuditQuery(limit: 100))
            #expect(all.map(\.timeMillis) == (0..<50).map { Int64(1_000 + $0) })
            #expect(all.map(\.id) == (1...50).map { Int64($0) })
            #expect(try await store.audit(AuditQuery(user: "bob", outcome: "failure")).map(\.reason) == ["r3", "r9", "r15", "r21", "r27", "r33", "r39", "r45"])
            // New records continue after the old ids.
            _ = try await store.commit([.audit(AuditRecord(timeMillis: 2_000, action: "verify", user: "carol", outcome: "success"))])
            #expect(try await store.audit(AuditQuery(limit: 1)).map(\.id) == [51])
            try await store.close()
        }
    }

    @Test func v4DatabaseMigratesToV5AndV6KeepingItsData() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            // A database as a v4 twofoldd left it: a user's override, a setting and audit records without hosts.
            let sealer = Sealer(keys: keys)
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            try Schema.migrator(keyCheck: try KeyCheck.seal(with: sealer), sealer: sealer).migrate(queue, upTo: "v4")
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO users (name, requirement) VALUES ('bob', 'required')")
                try db.execute(sql: "INSERT INTO settings (key, value) VALUES ('policy', '{}')")
                for i in 0..<5 {
                    try db.execute(sql: "INSERT INTO audit (time, action, user, outcome) VALUES (?, 'verify', 'alice', 'success')", arguments: [1_000 + i])
                }
            }
            try queue.close()

            let store = try openStore(dir, keys: keys)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v5'") == 1)
            try await expectV4DataKeptAndV5Working(store)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v6'") == 1)
            try await store.close()
        }
    }

    @Test func v6DatabaseMigratesToV7KeepingItsData() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            // A database as a v6 twofoldd left it: an enrolled user with a used step, failures and an
            // override, recovery codes, a host moved in, a setting.
            let sealer = Sealer(keys: keys)
            let secret = try SecretBytes(randomCount: 20)
            let pepper = try #require(try SQLiteStore.testingCreate(path: dir + "/twofold.db", keys: keys, upTo: "v6", sql: """
                INSERT INTO users (name, requirement, failures) VALUES ('alice', 'required', 2);
                INSERT INTO moved_hosts (host, audit_through) VALUES ('h-1', 9);
                INSERT INTO settings (key, value) VALUES ('policy', '{}');
                """))
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: pepper)
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, last_step, added_at)
                    VALUES ('alice', 'app', 'totp', 'SHA1', 6, 30, ?, 40, 1000)
                    """, arguments: [Data(try sealer.seal(secret, .factor, user: "alice", factor: "app"))])
                try db.execute(sql: "INSERT INTO recovery_codes (user, idx, sealed) VALUES ('alice', 0, ?)",
                               arguments: [Data(try sealer.sealRecovery(code, user: "alice", index: 0))])
            }
            try queue.close()

            let store = try openStore(dir, keys: keys)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v7'") == 1)
            var alice = try #require(try await store.user("alice"))
            #expect(alice.factors.map(\.name) == ["app"] && alice.secret?.constantTimeEquals(secret) == true && alice.verify.lastStep == 40)
            #expect(alice.requirement == .required && alice.throttle.failures == 2 && alice.recoveryCodesLeft == 1)
            #expect(alice.contacts.isEmpty && alice.deliveredCode == nil)
            #expect(try await store.movedAuditMark(host: "h-1") == 9)
            #expect(try await store.setting("policy") == "{}")
            #expect(try await store.commit([accept("alice", step: 40)]) == [.conflict])
            // What v7 adds works on the migrated file; nothing of it is sealed.
            let counts = try await store.sealedValueCounts()
            try await store.addContact(user: "alice", Contact(channel: .sms, value: "+4915112345678", addedMillis: 5, verifiedMillis: 5))
            try await store.storeDeliveredCode(user: "alice", DeliveredCodeRecord(
                id: 7, purpose: .login, channel: .sms, destination: "+4915112345678", hash: Array(repeating: 1, count: 32), digits: 6,
                host: "h-1", service: "sshd", createdMillis: 5, expiresMillis: 500))
            try await store.recordSend(DeliverySend(timeMillis: 5, user: "alice", channel: .sms, destination: "+4915112345678", host: "h-1"))
            #expect(try await store.sealedValueCounts() == counts)
            alice = try #require(try await store.user("alice"))
            #expect(alice.kinds == [.totp, .sms] && alice.deliveredCode?.id == 7)
            #expect(try await store.commit([.accept(user: "alice", use: .deliveredCode(channel: .sms, id: 7), atMillis: 50, policy: ThrottlePolicy())])
                    == [.applied])
            #expect(try await store.user("alice")?.throttle == ThrottleState())
            try await store.close()
        }
    }

    @Test func v7DatabaseMigratesToV8KeepingItsData() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            // A database as a v7 twofoldd left it: an enrolled user with a used step and a verified
            // contact, a login code waiting, a send recorded, a setting.
            let sealer = Sealer(keys: keys)
            let secret = try SecretBytes(randomCount: 20)
            _ = try SQLiteStore.testingCreate(path: dir + "/twofold.db", keys: keys, upTo: "v7", sql: """
                INSERT INTO users (name, requirement, failures) VALUES ('alice', 'required', 2);
                INSERT INTO contacts (user, channel, value, added_at, verified_at) VALUES ('alice', 'sms', '+4915112345678', 3, 4);
                INSERT INTO delivered_codes (user, purpose, id, channel, destination, hash, digits, host, service, created_at, expires_at)
                    VALUES ('alice', 'login', 7, 'sms', '+4915112345678', zeroblob(32), 6, 'h-1', 'sshd', 5, 500);
                INSERT INTO delivery_sends (time, user, channel, destination, host) VALUES (5, 'alice', 'sms', '+4915112345678', 'h-1');
                INSERT INTO settings (key, value) VALUES ('policy', '{}');
                """)
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO factors (user, name, kind, algorithm, digits, period, secret, last_step, added_at)
                    VALUES ('alice', 'app', 'totp', 'SHA1', 6, 30, ?, 40, 1000)
                    """, arguments: [Data(try sealer.seal(secret, .factor, user: "alice", factor: "app"))])
            }
            try queue.close()

            let store = try openStore(dir, keys: keys)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v8'") == 1)
            let alice = try #require(try await store.user("alice"))
            #expect(alice.factors.map(\.name) == ["app"] && alice.secret?.constantTimeEquals(secret) == true && alice.verify.lastStep == 40)
            #expect(alice.requirement == .required && alice.throttle.failures == 2 && alice.kinds == [.totp, .sms])
            #expect(alice.contacts == [Contact(channel: .sms, value: "+4915112345678", addedMillis: 3, verifiedMillis: 4)])
            #expect(alice.deliveredCode?.id == 7 && alice.keys.isEmpty)
            #expect(try await store.sendCounts(user: "alice", destination: "+4915112345678", host: "h-1", since: 0).user == 1)
            #expect(try await store.setting("policy") == "{}")
            try await expectV8Working(store, user: "alice")
            #expect(try await store.user("alice")?.kinds == [.totp, .sms, .fido2])
            try await store.close()
        }
    }

    @Test func v8DatabaseMigratesToV9KeepingItsData() async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            // A database as a v8 twofoldd left it: a user with a FIDO2 key, a verified contact and
            // an override, a setting.
            _ = try SQLiteStore.testingCreate(path: dir + "/twofold.db", keys: keys, upTo: "v8", sql: """
                INSERT INTO users (name, requirement) VALUES ('alice', 'required');
                INSERT INTO contacts (user, channel, value, added_at, verified_at) VALUES ('alice', 'sms', '+4915112345678', 3, 4);
                INSERT INTO fido2_keys (user, name, credential_id, algorithm, public_key, sign_count, aaguid, added_at)
                    VALUES ('alice', 'blue', x'0102', -8, zeroblob(32), 5, zeroblob(16), 6);
                INSERT INTO settings (key, value) VALUES ('policy', '{}');
                """)
            let store = try openStore(dir, keys: keys)
            #expect(try store.testingCount("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v9'") == 1)
            let alice = try #require(try await store.user("alice"))
            #expect(alice.requirement == .required && alice.kinds == [.sms, .fido2] && alice.keys.map(\.signCount) == [5])
            #expect(try await store.setting("policy") == "{}")
            try await expectV9Working(store, user: "alice")
            #expect(try await store.user("alice")?.kinds == [.sms, .fido2])
            // The rule's column has its CHECK on a migrated store too.
            #expect(throws: (any Error).self) { try store.testingExecute("UPDATE users SET ssh_key_rule = 'rsa' WHERE name = 'alice'") }
            #expect(try await store.user("alice")?.sshKeyRule == SSHKeyRule(types: .any, verifyRequired: true))
            try await store.close()
        }
    }

    @Test func theSSHKeysReadIsOneRangeOfThePrimaryKeyWithoutASort() async throws {
        try await withTempDir { dir in
            try await openStore(dir, keys: try makeKeys(in: dir)).close()
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            defer { try? queue.close() }
            let plan = try await queue.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteStore.sshKeysSQL, arguments: ["alice"]).map { $0["detail"] as String }
            }
            #expect(plan == ["SEARCH s USING PRIMARY KEY (user=?)"], "\(plan)")
            // sshd's read with the user's rule: the same range, and the user's row by its key.
            let withRule = try await queue.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteStore.authorizedSSHKeysSQL, arguments: ["alice"])
                    .map { $0["detail"] as String }
            }
            #expect(withRule.contains("SEARCH s USING PRIMARY KEY (user=?)") && withRule.contains("SEARCH u USING PRIMARY KEY (name=?)")
                    && withRule.count == 2, "\(withRule)")
        }
    }

    /// The text of a `column ... IN (...)` list in schema v9, from `column` to the list's end.
    static func v9List(_ column: String) throws -> Substring {
        let start = try #require(Schema.v9.range(of: column + " IN ("))
        let end = try #require(Schema.v9[start.upperBound...].firstIndex(of: ")"))
        return Schema.v9[start.upperBound..<end]
    }

    @Test func theSchemasSSHKeyTypesAreTheCoresOnes() throws {
        let list = try Self.v9List("type")
        for type in SSHPublicKey.securityKeyTypes.union(SSHPublicKey.otherTypes) {
            #expect(list.contains("'\(type)'"), "\(type)")
        }
        #expect(list.components(separatedBy: "', '").count == SSHPublicKey.securityKeyTypes.count + SSHPublicKey.otherTypes.count - 1)
    }

    @Test func theSchemasSSHKeyRulesAreTheCoresFour() throws {
        let rules = SSHKeyRule.Types.allCases.flatMap { types in [false, true].map { SSHKeyRule(types: types, verifyRequired: $0) } }
        let listed = try Self.v9List("ssh_key_rule").components(separatedBy: ", ").map { $0.trimmingCharacters(in: ["'"]) }
        #expect(listed.sorted() == rules.map(\.description).sorted(), "\(listed)")
        #expect(listed.allSatisfy { SSHKeyRule(text: $0)?.description == $0 })
        // PostgreSQL's CHECK says the same (PostgresSchemaV5Tests).
        #expect(Schema.v9.contains(PostgresSchemaV5Tests.ruleCheck), "\(PostgresSchemaV5Tests.ruleCheck)")
    }

    @Test func lastSuccessHostsLooksEachUserUpInThePartialIndex() async throws {
        try await withTempDir { dir in
            try await openStore(dir, keys: try makeKeys(in: dir)).close()
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            defer { try? queue.close() }
            let plan = try await queue.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteStore.lastSuccessHostsSQL, arguments: [#"["alice","bob"]"#])
                    .map { $0["detail"] as String }
            }
            #expect(plan.contains { $0.contains("USING INDEX audit_host_logins") || $0.contains("USING COVERING INDEX audit_host_logins") }, "\(plan)")
            #expect(!plan.contains { $0.hasPrefix("SCAN audit") }, "\(plan)")
        }
    }

    @Test func theLoginReadTakesKeysWithTheContactsInOneStatementWithoutASort() async throws {
        try await withTempDir { dir in
            try await openStore(dir, keys: try makeKeys(in: dir)).close()
            let queue = try DatabaseQueue(path: dir + "/twofold.db")
            defer { try? queue.close() }
            let plan = try await queue.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteStore.attachedSQL, arguments: ["alice"]).map { $0["detail"] as String }
            }
            // Each kind a search of its own key, merged: a user without keys costs one probe, no sort.
            #expect(plan.contains { $0.hasPrefix("SEARCH fido2_keys USING PRIMARY KEY (user=?)") }, "\(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") || $0.hasPrefix("SCAN") }, "\(plan)")
        }
    }

    @Test func notADatabaseIsAClearErrorAndIsLeftAlone() async throws {
        try await withTempDir { dir in
            let path = dir + "/twofold.db"
            let junk = Data(repeating: 0x5a, count: 4096)
            #expect(FileManager.default.createFile(atPath: path, contents: junk))
            let error = #expect(throws: StoreError.self) { try openStore(dir, keys: try makeKeys(in: dir)) }
            guard case .database? = error else {
                Issue.record("expected .database, got \(String(describing: error))")
                return
            }
            #expect(FileManager.default.contents(atPath: path) == junk)
        }
    }
}
