/// One step of a rekey, or the counts of `rekey --check` (`ControlRequest.rekey`). Never holds a
/// secret: key ids are public names of keys.
public struct RekeyReport: Codable, Sendable, Equatable {
    /// The id (16 hex digits) of the key the daemon seals with, and of its previous keys.
    public var sealingKey: String
    public var previousKeys: [String]
    /// What this step did: re-sealed under the sealing key; found already under it; changed by
    /// someone else between read and write (left: whoever changed it sealed it anew); not opening
    /// with the daemon's keyring (left as they are).
    public var resealed: Int
    public var alreadyCurrent: Int
    public var changed: Int
    public var unreadable: Int
    /// Where the next step starts; nil: the pass is over (or this was a check).
    public var cursor: String?
    /// The sealed values by key: for a check, and at the end of a pass.
    public var counts: [SealedCount]?

    public init(sealingKey: String, previousKeys: [String], resealed: Int = 0, alreadyCurrent: Int = 0, changed: Int = 0,
                unreadable: Int = 0, cursor: String? = nil, counts: [SealedCount]? = nil) {
        self.sealingKey = sealingKey
        self.previousKeys = previousKeys
        self.resealed = resealed
        self.alreadyCurrent = alreadyCurrent
        self.changed = changed
        self.unreadable = unreadable
        self.cursor = cursor
        self.counts = counts
    }

    /// Sealed values under another key than the sealing key (format 1 included): what is left to do.
    public var notUnderSealingKey: Int? {
        counts.map { $0.filter { $0.keyID != sealingKey }.reduce(0) { $0 + $1.count } }
    }
}

/// How many sealed values are under one key.
public struct SealedCount: Codable, Sendable, Equatable {
    /// The key's id (16 hex digits); nil for format 1 blobs, which name no key (the database's
    /// first key sealed them).
    public var keyID: String?
    public var formatVersion: Int
    public var count: Int

    public init(keyID: String?, formatVersion: Int, count: Int) {
        self.keyID = keyID
        self.formatVersion = formatVersion
        self.count = count
    }
}
