import Foundation
import PostgresNIO
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Users read back from rows of `users LEFT JOIN factors` (a user's rows consecutive), as SQLite's
/// `decodeUsers` reads them: the secret opened when a sealer is given, a damaged row a `corruptRecord`.
enum PostgresUserRows {
    /// The columns a user's row has: the user's (0...9), the factor's (10...20), its sealed secret
    /// (21), the count of unused recovery codes (22), the contacts as JSON (23), the login code's
    /// (24...32), the keys as JSON (33). A query may add columns of its own after them.
    static let columns = 34

    static func decode(_ rows: PostgresQueryResult, sealer: Sealer?) throws -> [UserRecord] {
        var users: [UserRecord] = []
        for row in rows {
            let columns = row.makeRandomAccess()
            // A NULL name: no such user (a login's read still returns its setting's row).
            guard let name = try columns[0].decode(String?.self) else { continue }
            if users.last?.name != name { users.append(try decodeUser(columns, name: name)) }
            guard try columns[10].decode(String?.self) != nil else { continue }
            let factor = try decodeFactor(columns, user: name, sealer: sealer)
            users[users.count - 1].factors.append(factor)
            if let used = factor.lastUsedMillis, used > users[users.count - 1].lastSuccessMillis ?? .min {
                users[users.count - 1].lastSuccessMillis = used
            }
        }
        return users
    }

    private static func decodeUser(_ columns: PostgresRandomAccessRow, name: String) throws -> UserRecord {
        let requirement = try columns[5].decode(String.self)
        guard let override = RequirementOverride(rawValue: requirement) else {
            throw StoreError.corruptRecord(user: name, reason: "unknown requirement '\(requirement)'")
        }
        var kinds: Set<FactorKind>?
        if let text = try columns[8].decode(String?.self) {
            let parsed = text.split(separator: ",").map { FactorKind(rawValue: String($0)) }
            guard !parsed.isEmpty, !parsed.contains(nil) else { throw StoreError.corruptRecord(user: name, reason: "unknown factor kinds '\(text)'") }
            kinds = Set(parsed.compactMap { $0 })
        }
        let throttle = ThrottleState(failures: try columns[2].decode(Int.self), notBeforeMillis: try columns[3].decode(Int64?.self),
                                     lockedUntilMillis: try columns[4].decode(Int64?.self))
        var record = UserRecord(name: name, pendingFactor: try columns[1].decode(String?.self), throttle: throttle, requirement: override,
                                lastSuccessMillis: try columns[6].decode(Int64?.self), recoveryCodesLeft: Int(try columns[22].decode(Int64.self)),
                                firstRequiredMillis: try columns[7].decode(Int64?.self), factorKinds: kinds,
                                contacts: try contacts(columns, user: name), deliveredCode: try loginCode(columns, user: name),
                                sshKeyRule: try SSHKeyRuleColumn.rule(try columns[9].decode(String?.self), user: name))
        for key in try keys(columns, user: name) { record.appendKey(key) }
        return record
    }

    /// The keys from their JSON array (column 33; NULL: none).
    private static func keys(_ columns: PostgresRandomAccessRow, user: String) throws -> [Fido2Credential] {
        guard let json = try columns[33].decode(String?.self) else { return [] }
        let keys: [PostgresKeyJSON]
        do {
            keys = try JSONDecoder().decode([PostgresKeyJSON].self, from: Data(json.utf8))
        } catch {
            throw StoreError.corruptRecord(user: user, reason: "unreadable keys (\(type(of: error)))")
        }
        return try keys.map { try $0.credential(user: user) }
    }

    /// The contacts from their JSON array (column 23; NULL: none).
    private static func contacts(_ columns: PostgresRandomAccessRow, user: String) throws -> [Contact] {
        guard let json = try columns[23].decode(String?.self) else { return [] }
        do {
            return try JSONDecoder().decode([Contact].self, from: Data(json.utf8))
        } catch {
            throw StoreError.corruptRecord(user: user, reason: "unreadable contacts (\(type(of: error)))")
        }
    }

    /// The login code from its columns (24...32; a NULL id: none).
    private static func loginCode(_ columns: PostgresRandomAccessRow, user: String) throws -> DeliveredCodeRecord? {
        guard let id = try columns[24].decode(Int64?.self) else { return nil }
        return try PostgresDeliveryRows.code(columns, at: 24, id: id, purpose: .login, user: user)
    }

    private static func decodeFactor(_ columns: PostgresRandomAccessRow, user: String, sealer: Sealer?) throws -> FactorRecord {
        let name = try columns[10].decode(String.self)
        let verify = VerifyState(lastStep: try columns[15].decode(Int64?.self), counter: UInt64(bitPattern: try columns[16].decode(Int64.self)),
                                 drift: try columns[17].decode(Int.self), lastOffset: try columns[18].decode(Int?.self))
        var factor = FactorRecord(name: name, parameters: try parameters(columns, at: 11, user: user), verify: verify,
                                  addedAtMillis: try columns[19].decode(Int64.self), lastUsedMillis: try columns[20].decode(Int64?.self))
        if let sealer {
            guard let blob = try columns[21].decode(ByteBuffer?.self) else {
                throw StoreError.corruptRecord(user: user, reason: "factor '\(name)' without a secret")
            }
            factor.secret = try sealer.open(Array(blob.readableBytesView), .factor, user: user, factor: name)
        }
        return factor
    }

    /// OTP parameters from the four columns kind (method), algorithm, digits, period starting at `index`.
    static func parameters(_ columns: PostgresRandomAccessRow, at index: Int, user: String) throws -> OTPParameters {
        guard let methodText = try columns[index].decode(String?.self), let method = OTPMethod(rawValue: methodText),
              let algorithmText = try columns[index + 1].decode(String?.self), let algorithm = HashAlgorithm(rawValue: algorithmText),
              let digits = try columns[index + 2].decode(Int?.self), let period = try columns[index + 3].decode(Int?.self)
        else {
            throw StoreError.corruptRecord(user: user, reason: "missing or unknown OTP parameters")
        }
        return OTPParameters(method: method, algorithm: algorithm, digits: digits, period: period)
    }
}

/// One factor to add or replace, as the JSON the upsert unpacks (postgres-nio binds no arrays of
/// optionals): the secret sealed, in base64.
struct PostgresFactorRow: Encodable, Sendable {
    let user: String
    let name: String
    let kind: String
    let algorithm: String
    let digits: Int
    let period: Int
    let secret: String
    let lastStep: Int64?
    let counter: Int64
    let drift: Int
    let lastOffset: Int?
    let addedAt: Int64

    init(user: String, name: String, parameters: OTPParameters, sealed: [UInt8], verify: VerifyState, atMillis: Int64) {
        self.user = user
        self.name = name
        kind = parameters.method.rawValue
        algorithm = parameters.algorithm.rawValue
        digits = parameters.digits
        period = parameters.period
        secret = Data(sealed).base64EncodedString()
        lastStep = verify.lastStep
        counter = Int64(bitPattern: verify.counter)
        drift = verify.drift
        lastOffset = verify.lastOffset
        addedAt = atMillis
    }

    /// Adds the factors, or replaces those of the same name (replay state and last use start over),
    /// in the order given; one statement. A (user, name) must not come twice.
    static func upsert(_ rows: [PostgresFactorRow], _ connection: PostgresConnection) async throws {
        let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
        try await connection.run("""
            INSERT INTO factors (user_name, name, kind, algorithm, digits, period, secret, last_step, counter, drift, last_offset, added_at)
            SELECT r."user", r.name, r.kind, r.algorithm, r.digits, r.period, decode(r.secret, 'base64'), r."lastStep", r.counter,
                r.drift, r."lastOffset", r."addedAt"
            FROM jsonb_to_recordset(\(json)::jsonb) AS r("user" text, name text, kind text, algorithm text, digits integer,
                period integer, secret text, "lastStep" bigint, counter bigint, drift bigint, "lastOffset" bigint, "addedAt" bigint)
            ON CONFLICT (user_name, name) DO UPDATE SET
                kind = excluded.kind, algorithm = excluded.algorithm, digits = excluded.digits, period = excluded.period,
                secret = excluded.secret, last_step = excluded.last_step, counter = excluded.counter, drift = excluded.drift,
                last_offset = excluded.last_offset, added_at = excluded.added_at, last_used = NULL
            """)
    }
}

extension PostgresStore {
    /// Seals codes for indexes 0..<n (outside the write transaction, to keep it short).
    func sealCodes(_ codes: [RecoveryCodeHash], user: String) throws -> [ByteBuffer] {
        try codes.enumerated().map { index, code in ByteBuffer(bytes: try sealer.sealRecovery(code, user: user, index: index)) }
    }

    /// Replaces each user's recovery codes with the sealed ones given (two statements, any number of users).
    static func storeCodes(_ codes: [String: [ByteBuffer]], _ connection: PostgresConnection) async throws {
        let users = codes.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var names: [String] = [], indexes: [Int] = [], sealed: [ByteBuffer] = []
        for user in users {
            for (index, blob) in codes[user, default: []].enumerated() {
                names.append(user)
                indexes.append(index)
                sealed.append(blob)
            }
        }
        try await connection.run("DELETE FROM recovery_codes WHERE user_name = ANY(\(users))")
        guard !names.isEmpty else { return }
        try await connection.run("""
            INSERT INTO recovery_codes (user_name, idx, sealed) SELECT * FROM unnest(\(names)::text[], \(indexes)::bigint[], \(sealed)::bytea[])
            """)
    }
}
