import TwofoldCore

/// What both backends check of a contact before storing it, so that a send limit per destination
/// cannot be dodged by writing one address two ways, and a listing shows what a prompt masks.
extension Contact {
    /// Throws `StoreError.conflict` (the message names the user and the channel, not the address)
    /// unless `value` is an address of its channel in the form `ContactAddress.normalize` gives.
    package func checkStorable(user: String) throws {
        let normalized: String
        do {
            normalized = try ContactAddress.normalize(value, channel: channel)
        } catch {
            throw StoreError.conflict("the \(channel.rawValue) contact of user '\(user)' is not an address: \(error)")
        }
        guard normalized == value else {
            throw StoreError.conflict("the \(channel.rawValue) contact of user '\(user)' is not in its normalised form")
        }
    }
}

extension Array where Element == UserContact {
    /// An import's contacts as both backends write them: each checked (`checkStorable`; one not
    /// verified is refused too: an import adds verified contacts), then the last of each user and
    /// channel (as adding them one by one would leave it: a verified contact replaces its channel's),
    /// in byte order of user, then channel. Throws `StoreError.conflict` for the first refused one.
    package func importable() throws -> [UserContact] {
        var last: [String: [DeliveryChannel: UserContact]] = [:]
        for item in self {
            try item.contact.checkStorable(user: item.user)
            guard item.contact.isVerified else {
                throw StoreError.conflict("the \(item.contact.channel.rawValue) contact of user '\(item.user)' is not verified: an import adds verified contacts")
            }
            last[item.user, default: [:]][item.contact.channel] = item
        }
        return last.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.flatMap { user in
            DeliveryChannel.allCases.compactMap { last[user]?[$0] }
        }
    }
}
