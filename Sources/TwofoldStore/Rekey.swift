import TwofoldCrypto

/// How many sealed values are under one key (`TwofoldStore.sealedValueCounts()`).
public struct SealedValueCount: Sendable, Equatable {
    /// The blob format: 2 names its key; 1 predates key ids (under the database's first key).
    public var formatVersion: Int
    /// The key a format 2 blob names; nil for format 1 (or a blob of an unknown format).
    public var keyID: KeyID?
    public var count: Int

    public init(formatVersion: Int, keyID: KeyID?, count: Int) {
        self.formatVersion = formatVersion
        self.keyID = keyID
        self.count = count
    }
}

/// What one step of a rekey did (`TwofoldStore.resealSecrets(after:limit:)`).
public struct ResealBatch: Sendable, Equatable {
    /// Written back under the sealing key.
    public var resealed = 0
    /// Examined and already under the sealing key.
    public var alreadyCurrent = 0
    /// Changed between the read and the write (whoever changed it sealed it anew): left.
    public var changed = 0
    /// Did not open with the keyring (tampered, or under a key the daemon does not hold): left.
    public var unreadable = 0
    /// Where the next step starts; nil: the end of the store.
    public var next: String?

    public init(resealed: Int = 0, alreadyCurrent: Int = 0, changed: Int = 0, unreadable: Int = 0, next: String? = nil) {
        self.resealed = resealed
        self.alreadyCurrent = alreadyCurrent
        self.changed = changed
        self.unreadable = unreadable
        self.next = next
    }
}

/// A backend without key rotation: no pepper of its own, and no rekey.
extension TwofoldStore {
    public func recoveryPepper() async throws -> SecretBytes? { nil }

    public func sealedValueCounts() async throws -> [SealedValueCount] {
        throw StoreError.database("this store backend cannot rotate keys (no sealed-value counts)")
    }

    public func resealSecrets(after cursor: String?, limit: Int) async throws -> ResealBatch {
        throw StoreError.database("this store backend cannot rotate keys (no re-sealing)")
    }
}
