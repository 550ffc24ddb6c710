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
