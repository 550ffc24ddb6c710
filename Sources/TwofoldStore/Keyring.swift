/// The keys a daemon holds: the sealing key, which seals every new or re-sealed secret, and any
/// previous keys, which only open what they sealed. During a rotation every daemon on a database
/// holds the old key and the new one, so each can open what any other wrote, whichever of the two
/// it seals with.
public struct Keyring: Sendable {
    public let sealing: SealingKeys
    /// Open-only keys, without the sealing key and without repeats, in the order given.
    public let previous: [SealingKeys]

    public init(sealing: SealingKeys, previous: [SealingKeys] = []) {
        self.sealing = sealing
        var seen: Set<KeyID> = [sealing.id]
        self.previous = previous.filter { seen.insert($0.id).inserted }
    }

    /// The sealing key, then the previous keys.
    public var members: [SealingKeys] { [sealing] + previous }

    /// The member with id `id`, if the keyring holds it.
    public func member(_ id: KeyID) -> SealingKeys? {
        // The sealing key first, without building `members`: the login path asks this for every secret.
        sealing.id == id ? sealing : previous.first { $0.id == id }
    }
}
