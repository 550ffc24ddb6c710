import NIOCore
import PostgresNIO
import TwofoldCrypto
import TwofoldStore

/// Key rotation, with the SQLite backend's contract and walk (ResealWalk.swift): the pepper,
/// pending secrets, factors' secrets, recovery codes, each in primary-key order. A step reads its
/// rows on one connection, opens and seals them outside any transaction, then writes them back in
/// one short transaction where each is updated only if it still holds the blob read
/// (PostgresReseal). Nothing of a pass is kept here: the cursor says where it is.
extension PostgresStore {
    public func recoveryPepper() async throws -> SecretBytes? {
        try checkOpen()
        return pepper
    }

    public func sealedValueCounts() async throws -> [SealedValueCount] {
        try await read { connection in
            // substring, not get_byte: an empty (damaged) blob counts as format 0 instead of failing.
            try await connection.run("""
                SELECT substring(b FROM 1 FOR 1) AS v,
                    CASE WHEN substring(b FROM 1 FOR 1) = decode('02', 'hex') THEN substring(b FROM 2 FOR \(unescaped: String(KeyID.length))) END AS k,
                    count(*) AS n
                FROM (SELECT value AS b FROM twofold_meta WHERE key = \(StoreMeta.pepper)
                      UNION ALL SELECT pending_secret FROM users WHERE pending_secret IS NOT NULL
                      UNION ALL SELECT secret FROM factors
                      UNION ALL SELECT sealed FROM recovery_codes) AS s
                GROUP BY v, k ORDER BY n DESC, k
                """).map { row in
                let (version, key, count) = try row.decode((ByteBuffer, ByteBuffer?, Int64).self)
                return SealedValueCount(formatVersion: Int(version.readableBytesView.first ?? 0),
                                        keyID: key.flatMap { KeyID(bytes: $0.readableBytesView) }, count: Int(count))
            }
        }
    }

    public func resealSecrets(after cursor: String?, limit: Int) async throws -> ResealBatch {
        let start = try ResealPosition(cursor: cursor)
        let (rows, next) = try await read(statements: ResealStage.allCases.count) { connection in
            try await start.walk(limit: max(limit, 1)) { position, limit in try await PostgresReseal.rows(after: position, limit: limit, connection) }
        }
        let work = ResealedRows(rows, sealer: sealer)
        var batch = ResealBatch(alreadyCurrent: work.alreadyCurrent, unreadable: work.unreadable.count, next: try next?.cursor())
        for (row, error) in work.unreadable {
            // Left as it is: tampered, or under a key this daemon does not hold.
            logger.error("rekey: a sealed value does not open with the keyring; left as it is",
                         metadata: ["user": "\(row.user)", "column": "\(row.stage)", "error": "\(error)"])
        }
        guard !work.writes.isEmpty else { return batch }
        let writes = work.writes
        let written = try await write(statements: 1 + ResealStage.allCases.count) { connection in try await PostgresReseal.write(writes, connection) }
        batch.resealed = written
        batch.changed = writes.count - written
        return batch
    }
}
