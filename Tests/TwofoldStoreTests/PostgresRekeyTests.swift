import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldPostgres
@testable import TwofoldStore
import TwofoldTestSupport

/// Key rotation as PostgreSQL holds it: a v3 database (written as the code before schema v4 wrote
/// it, its key check in format 1 from before key ids or in format 2) migrated (to v4, then on to v9) with the pepper
/// its recovery codes were made with; `checkKeys` reading every check without writing; a value
/// changed between a step's read and its write; the cursor. The contract every backend shares
/// (full rotation, random pepper, unreadable values) is in the conformance suite's RekeyTests.
@Suite struct PostgresRekeyTests {
    /// The configuration of a store on `database`, with wide bounds (as `PostgresStoreTests.open`).
    static func configuration(_ cluster: PostgresCluster, _ database: String, statement: Duration = .seconds(10)) throws -> PostgresStoreConfiguration {
        var configuration = try PostgresStoreConfiguration(url: cluster.url(database: database), password: try cluster.password)
        configuration.connectTimeout = .seconds(10)
        configuration.statementTimeout = statement
        return configuration
    }

    /// A store on `database` of `cluster` with a keyring.
    static func open(_ cluster: PostgresCluster, _ database: String, _ keyring: Keyring, statement: Duration = .seconds(10)) async throws -> PostgresStore {
        try await PostgresStore(configuration: try configuration(cluster, database, statement: statement), keyring: keyring)
    }

    static func checkKeys(_ cluster: PostgresCluster, _ database: String, _ keyring: Keyring) async throws -> (known: [KeyID], toRegister: [KeyID])? {
        try await PostgresStore.checkKeys(configuration: try configuration(cluster, database), keyring: keyring)
    }


    /// What is in the database besides users: the schema version and the rows of twofold_meta ("-" without the table).
    /// psql runs off the cooperative pool (`offPool`), as everything blocking in these tests does.
    static func layout(_ cluster: PostgresCluster, _ database: String) async throws -> String {
        try await offPool {
            let url = cluster.url(database: database)
            let version = try cluster.psql("SELECT version FROM twofold_schema", url: url)
            guard try cluster.psql("SELECT to_regclass('twofold_meta') IS NOT NULL", url: url) == "t" else { return version + " -" }
            return version + " " + (try cluster.psql("SELECT count(*) FROM twofold_meta WHERE key LIKE 'key_check%'", url: url)) + " checks"
        }
    }

    @Test(arguments: [false, true])
    func aV3DatabaseMigratesKeepsThePepperItsRecoveryCodesWereMadeWithAndRotates(formatOne: Bool) async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new"), stranger = try makeKeys(in: dir, name: "stranger")
            let (secret, codes, pending) = try await offPool {
                let v3 = try PostgresV3Database(cluster: cluster, database: database, keys: old, formatOne: formatOne)
                let (secret, codes) = try v3.enroll("alice", codes: 3)
                return (secret, codes, try v3.beginEnrollment("carol"))
            }
            #expect(try await Self.layout(cluster, database) == "v3 -")

            // Read only, on v3: the one check says which keys it knows; a stranger changes nothing.
            #expect(try await Self.checkKeys(cluster, database, Keyring(sealing: new, previous: [old])).map { [$0.known, $0.toRegister] } == [[old.id], [new.id]])
            await #expect(throws: StoreError.wrongKey) { try await Self.checkKeys(cluster, database, Keyring(sealing: stranger)) }
            await #expect(throws: StoreError.wrongKey) { try await Self.open(cluster, database, Keyring(sealing: stranger, previous: [new])) }
            #expect(try await Self.layout(cluster, database) == "v3 -")

            // Migrated by the old key: the pepper is the one it derived, every secret and code still opens.
            let migrated = try await Self.open(cluster, database, Keyring(sealing: old))
            #expect(try await Self.layout(cluster, database) == "v9 1 checks")
            let pepper = try #require(try await migrated.recoveryPepper())
            #expect(pepper.constantTimeEquals(old.recoveryPepper))
            #expect(RecoveryCodes.match(codes[1], against: try await migrated.recoveryCodes(user: "alice"), pepper: pepper) == 1)
            #expect(try await migrated.user("alice")?.secret?.constantTimeEquals(secret) == true)
            try await migrated.close()

            // Rotated: the new key registered next to the old one, everything re-sealed, the old key removed.
            let rotated = try await Self.open(cluster, database, Keyring(sealing: new, previous: [old]))
            #expect(try await Self.layout(cluster, database) == "v9 2 checks")
            #expect(try await rekeyAll(rotated, limit: 2) == ResealBatch(resealed: 6))
            #expect(try await rotated.sealedValueCounts() == [SealedValueCount(formatVersion: 2, keyID: new.id, count: 6)])
            try await rotated.close()
            let after = try await Self.open(cluster, database, Keyring(sealing: new))
            let samePepper = try #require(try await after.recoveryPepper())
            #expect(samePepper.constantTimeEquals(old.recoveryPepper))
            #expect(RecoveryCodes.match(codes[2], against: try await after.recoveryCodes(user: "alice"), pepper: samePepper) == 2)
            #expect(try await after.user("alice")?.secret?.constantTimeEquals(secret) == true)
            #expect(try await after.pendingEnrollment(user: "carol")?.secret.constantTimeEquals(pending) == true)
            try await after.close()
            // The old check is still there: the database still knows the old key (which opens nothing now).
            #expect(try await Self.checkKeys(cluster, database, Keyring(sealing: old)).map(\.known) == [old.id])
        }
    }

    @Test func checkKeysReadsEveryCheckAndChangesNothing() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let a = try makeKeys(in: dir, name: "a"), b = try makeKeys(in: dir, name: "b"), c = try makeKeys(in: dir, name: "c")
            // No schema yet: nil, and still none after.
            #expect(try await Self.checkKeys(cluster, database, Keyring(sealing: a)) == nil)
            #expect(try await offPool { try cluster.psql("SELECT to_regclass('twofold_schema') IS NULL", url: cluster.url(database: database)) } == "t")

            try await Self.open(cluster, database, Keyring(sealing: a)).close()
            await #expect(throws: StoreError.wrongKey) { try await Self.checkKeys(cluster, database, Keyring(sealing: b, previous: [c])) }
            let status = try #require(try await Self.checkKeys(cluster, database, Keyring(sealing: b, previous: [a, c])))
            #expect(status.known == [a.id] && status.toRegister == [b.id, c.id])
            #expect(try await Self.layout(cluster, database) == "v9 1 checks")

            // Once b is registered (next to a), b alone is known, and a still is.
            try await Self.open(cluster, database, Keyring(sealing: a, previous: [b])).close()
            #expect(try await Self.checkKeys(cluster, database, Keyring(sealing: b)).map { [$0.known, $0.toRegister] } == [[b.id], []])
            #expect(try await Self.checkKeys(cluster, database, Keyring(sealing: c, previous: [a, b])).map { [$0.known, $0.toRegister] } == [[a.id, b.id], [c.id]])
            #expect(try await Self.layout(cluster, database) == "v9 2 checks")
            // A newer schema is reported first, as a start would.
            _ = try await offPool { try cluster.psql("UPDATE twofold_schema SET version = 'v10'", url: cluster.url(database: database)) }
            await #expect(throws: StoreError.schemaTooNew(found: "v10", supported: "v9")) { try await Self.checkKeys(cluster, database, Keyring(sealing: a)) }
        }
    }

    @Test func aValueChangedBetweenTheReadAndTheWriteIsLeft() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new")
            let first = try await Self.open(cluster, database, Keyring(sealing: old))
            try await enroll(first, "alice")
            try await first.close()
            let store = try await Self.open(cluster, database, Keyring(sealing: new, previous: [old]))
            let rows = try await store.read { try await PostgresReseal.rows(after: ResealPosition(stage: .factorSecrets), limit: 10, $0) }
            let row = try #require(rows.first)
            #expect(rows.count == 1)
            let resealed = try #require(try row.stage.reseal(row, sealer: store.sealer))
            // Re-enrolled meanwhile: the step's write does not apply, the new secret stays.
            let secret = try await enroll(store, "alice")
            #expect(try await store.write { try await PostgresReseal.write([(row, resealed)], $0) } == 0)
            #expect(try await store.user("alice")?.secret?.constantTimeEquals(secret) == true)
            try await store.close()
        }
    }

    @Test func aCursorIsAPlaceInTheWalkAndAForeignOneIsRefused() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new")
            let first = try await Self.open(cluster, database, Keyring(sealing: old))
            let pepper = try #require(try await first.recoveryPepper())
            let codes = try (0..<4).map { _ in try RecoveryCodes.makeHash(canonical: "0123456789", pepper: pepper) }
            for user in ["a", "b", "c"] { try await enroll(first, user, codes: codes) }
            try await first.beginEnrollment(user: "d", factor: "phone", secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)
            try await first.close()
            let store = try await Self.open(cluster, database, Keyring(sealing: new, previous: [old]))
            // 1 pepper + 1 pending + 3 factors + 12 codes, one at a time: 17 steps, each with a cursor, the last without.
            var steps = 0
            var cursor: String?
            repeat {
                let batch = try await store.resealSecrets(after: cursor, limit: 1)
                #expect(batch.resealed + batch.alreadyCurrent == (steps == 17 ? 0 : 1), "step \(steps)")
                cursor = batch.next
                steps += 1
            } while cursor != nil
            #expect(steps == 18)
            #expect(try await store.sealedValueCounts() == [SealedValueCount(formatVersion: 2, keyID: new.id, count: 17)])
            await #expect(throws: StoreError.database("not a rekey cursor of this store")) { try await store.resealSecrets(after: "{", limit: 1) }
            try await store.close()
        }
    }
}

/// In the serialized suite, so that it does not run at the same time as the other ten daemons; and
/// like it, after the parallel pass (scripts/run-tests.sh says why).
extension PostgresStoreTests {
    @Test func tenDaemonsOpeningAV3DatabaseTogetherMigrateItOnceAndRegisterTheNewKeyOnce() async throws {
        let cluster = try PostgresCluster()
        let database = try await offPool { try cluster.createScratchDatabase() }
        try await withTempDir { dir in
            let old = try makeKeys(in: dir, name: "old"), new = try makeKeys(in: dir, name: "new")
            let codes = try await offPool {
                try PostgresV3Database(cluster: cluster, database: database, keys: old, formatOne: false).enroll("alice", codes: 2).1
            }
            let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
                // Each waits for the openings before its own: the lock wait is bounded by the statement timeout.
                for _ in 0..<10 {
                    group.addTask { try await PostgresRekeyTests.open(cluster, database, Keyring(sealing: new, previous: [old]), statement: .seconds(30)) }
                }
                return try await group.reduce(into: [PostgresStore]()) { $0.append($1) }
            }
            #expect(try await PostgresRekeyTests.layout(cluster, database) == "v9 2 checks")
            for store in stores {
                let pepper = try #require(try await store.recoveryPepper())
                #expect(RecoveryCodes.match(codes[0], against: try await store.recoveryCodes(user: "alice"), pepper: pepper) == 0)
                try await store.close()
            }
        }
    }
}

/// A database as the code before schema v4 wrote it: v3's tables, the key's check in
/// `twofold_schema` only, no pepper stored (the daemon derived it from its key:
/// `SealingKeys.recoveryPepper`). `formatOne`: as the code before key ids sealed (format 1, the
/// check included); else format 2.
struct PostgresV3Database {
    let cluster: PostgresCluster
    let url: String
    let keys: SealingKeys
    let formatOne: Bool

    init(cluster: PostgresCluster, database: String, keys: SealingKeys, formatOne: Bool) throws {
        self.cluster = cluster
        url = cluster.url(database: database)
        self.keys = keys
        self.formatOne = formatOne
        var plain = KeyCheck.plaintext
        defer { Crypto.wipe(&plain) }
        let check = try seal(plain, .keycheck, user: KeyCheck.owner)
        try cluster.psql(PostgresSchema.tablesV3.map { $0.sql + ";" }.joined(separator: "\n") + """

            INSERT INTO twofold_schema (version, key_check) VALUES ('v3', \(Self.literal(check)));
            INSERT INTO twofold_timeline (timeline) SELECT \(PostgresTimeline.currentSQL);
            """, url: url)
    }

    static func literal(_ bytes: [UInt8]) -> String {
        "'\\x" + bytes.map { String(format: "%02x", $0) }.joined() + "'::bytea"
    }

    func seal(_ plain: [UInt8], _ purpose: SealPurpose, user: String, index: Int? = nil, factor: String? = nil) throws -> [UInt8] {
        guard formatOne else { return try plain.withUnsafeBytes { try Sealer(keys: keys).seal($0, purpose, user: user, index: index, factor: factor) } }
        let nonce = try Crypto.randomBytes(AESGCM.nonceLength)
        let body = try plain.withUnsafeBytes {
            try AESGCM.seal(key: keys.secretKey, nonce: nonce, plaintext: $0, aad: Sealer.aad(purpose, user: user, index: index, factor: factor))
        }
        return [Sealer.legacyVersion] + nonce + body
    }

    /// An active TOTP factor and `codes` recovery codes hashed with the key's derived pepper; the
    /// secret and the codes.
    func enroll(_ user: String, codes count: Int) throws -> (SecretBytes, [String]) {
        let secret = try SecretBytes(randomCount: 20)
        let codes = try RecoveryCodes.generate(count: count)
        var sql = """
            INSERT INTO users (name) VALUES ('\(user)');
            INSERT INTO factors (user_name, name, kind, algorithm, digits, period, secret, added_at)
                VALUES ('\(user)', '\(FactorName.first)', 'totp', '\(OTPParameters().algorithm.rawValue)', 6, 30,
                        \(Self.literal(try seal(secret.copyBytes(), .factor, user: user, factor: FactorName.first))), 1000);
            """
        for (index, code) in codes.enumerated() {
            let hash = try RecoveryCodes.makeHash(canonical: RecoveryCodes.canonical(code)!, pepper: keys.recoveryPepper)
            let sealed = try seal([UInt8(hash.salt.count)] + hash.salt + hash.hash, .recovery, user: user, index: index)
            sql += "\nINSERT INTO recovery_codes (user_name, idx, sealed) VALUES ('\(user)', \(index), \(Self.literal(sealed)));"
        }
        try cluster.psql(sql, url: url)
        return (secret, codes)
    }

    /// A pending enrollment of factor "phone"; its secret.
    func beginEnrollment(_ user: String) throws -> SecretBytes {
        let secret = try SecretBytes(randomCount: 20)
        let sealed = try seal(secret.copyBytes(), .pendingFactor, user: user, factor: "phone")
        try cluster.psql("""
            INSERT INTO users (name, pending_name, pending_secret, pending_method, pending_algorithm, pending_digits, pending_period)
            VALUES ('\(user)', 'phone', \(Self.literal(sealed)), 'totp', '\(OTPParameters().algorithm.rawValue)', 6, 30)
            """, url: url)
        return secret
    }
}
