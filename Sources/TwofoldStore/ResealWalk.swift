import Foundation

/// The walk a rekey makes through a store's sealed values, the same on every backend: the pepper,
/// pending secrets, factors' secrets, recovery codes, each in its primary-key order. A backend
/// reads a stage's rows after a position and writes a re-sealed blob back where it is still the one
/// read; what a row's AAD names, the cursor and the re-sealing itself are here.
package enum ResealStage: Int, Codable, Sendable, CaseIterable {
    case pepper, pendingSecrets, factorSecrets, recoveryCodes

    /// The stage after this one; nil after the last.
    package var next: ResealStage? { ResealStage(rawValue: rawValue + 1) }

    /// The blob sealed under the sealing key; nil when it already is. Throws when it does not open.
    package func reseal(_ row: SealedRow, sealer: Sealer) throws -> [UInt8]? {
        switch self {
        case .pepper: try sealer.reseal(row.blob, .pepper, user: KeyCheck.owner)
        case .pendingSecrets: try sealer.reseal(row.blob, .pendingFactor, user: row.user, factor: row.name)
        case .factorSecrets: try sealer.reseal(row.blob, .factor, user: row.user, factor: row.name)
        case .recoveryCodes: try sealer.reseal(row.blob, .recovery, user: row.user, index: row.index)
        }
    }
}

/// One sealed value as read for a rekey: where it is and the blob.
package struct SealedRow: Sendable {
    package var stage: ResealStage
    /// The user; "" for the pepper.
    package var user: String
    /// The factor's name (factors, pending secrets); "" elsewhere.
    package var name: String
    /// The recovery code's index; 0 elsewhere.
    package var index: Int
    package var blob: [UInt8]

    package init(stage: ResealStage, user: String, name: String, index: Int, blob: [UInt8]) {
        self.stage = stage
        self.user = user
        self.name = name
        self.index = index
        self.blob = blob
    }
}

/// A place in the walk: inside `stage`, after the row with that key (nil: from the stage's start).
/// Its JSON is the cursor a store hands out.
package struct ResealPosition: Codable, Equatable, Sendable {
    package var stage: ResealStage
    package var user: String?
    package var name = ""
    package var index = 0

    package init(stage: ResealStage) { self.stage = stage }

    package init(_ row: SealedRow) {
        stage = row.stage
        user = row.user
        name = row.name
        index = row.index
    }

    /// From a cursor this store handed out; nil: the start of the walk.
    package init(cursor: String?) throws {
        guard let cursor else {
            self.init(stage: .pepper)
            return
        }
        do {
            self = try JSONDecoder().decode(ResealPosition.self, from: Data(cursor.utf8))
        } catch {
            throw StoreError.database("not a rekey cursor of this store")
        }
    }

    package func cursor() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }

    /// Up to `limit` sealed values from here on, walking on through the later stages; and where the
    /// next step starts (nil: the walk reached the end). `read` gives a stage's rows after a
    /// position in its primary-key order, at most that many.
    package func walk(limit: Int, _ read: (ResealPosition, Int) async throws -> [SealedRow]) async throws -> ([SealedRow], ResealPosition?) {
        var rows: [SealedRow] = []
        var position = self
        while true {
            // The pepper is one row: past it, its stage holds nothing more.
            let exhausted = position.stage == .pepper && position.user != nil
            if !exhausted { rows += try await read(position, limit - rows.count) }
            if rows.count >= limit, let last = rows.last { return (rows, ResealPosition(last)) }
            guard let later = position.stage.next else { return (rows, nil) }
            position = ResealPosition(stage: later)
        }
    }
}

/// A step's rows opened with the keyring and sealed under its sealing key, outside any
/// transaction, before anything is written.
package struct ResealedRows: Sendable {
    /// The rows to write back, each with its new blob.
    package var writes: [(row: SealedRow, blob: [UInt8])] = []
    package var alreadyCurrent = 0
    /// The rows that do not open (tampered, or under a key the keyring does not hold): left as
    /// they are, for the backend to log.
    package var unreadable: [(row: SealedRow, error: StoreError)] = []

    package init(_ rows: [SealedRow], sealer: Sealer) {
        for row in rows {
            do {
                if let blob = try row.stage.reseal(row, sealer: sealer) {
                    writes.append((row, blob))
                } else {
                    alreadyCurrent += 1
                }
            } catch {
                unreadable.append((row, error as? StoreError ?? .database(String(describing: type(of: error)))))
            }
        }
    }
}
