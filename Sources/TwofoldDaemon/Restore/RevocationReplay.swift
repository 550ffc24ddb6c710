import TwofoldCore
import TwofoldStore

/// Re-applies the revocations of the audit exports to the restored store, through the store's own
/// operations (the same on both backends). Where a record does not say exactly which item, it
/// removes every candidate (more, never less) and says so.
enum RevocationReplay {
    static func apply(_ revocations: [Revocation], to store: any TwofoldStore, atMillis: Int64) async throws -> [RestoreReport.Reapplied] {
        var results: [RestoreReport.Reapplied] = []
        for revocation in revocations {
            let (result, applied) = try await apply(revocation, to: store, atMillis: atMillis)
            results.append(RestoreReport.Reapplied(timeMillis: revocation.timeMillis, user: revocation.user, record: revocation.record,
                                                   result: result, applied: applied))
        }
        return results
    }

    private static func apply(_ revocation: Revocation, to store: any TwofoldStore, atMillis: Int64) async throws -> (String, Bool) {
        if case .host(let host) = revocation.kind {
            let revoked = try await store.revokeHost(host, atMillis: atMillis)
            return revoked > 0 ? ("host '\(host)' revoked again (\(revoked) certificates)", true) : ("nothing to do: no certificate of '\(host)' in force", false)
        }
        guard let user = revocation.user else { return ("skipped: the record names no user", false) }
        guard let record = try await store.user(user) else { return ("nothing to do: the backup has no such user", false) }
        switch revocation.kind {
        case .user:
            return try await store.revoke(user: user) ? ("every factor, contact and key removed", true) : ("nothing to do: nothing enrolled", false)
        case .factor(let name):
            return try await store.removeFactor(user: user, name: name)
                ? ("factor '\(name)' removed (the backup held its old secret)", true) : ("nothing to do: no factor '\(name)' in the backup", false)
        case .allFactors:
            return try await removeFactors(record.factors.map(\.name), of: user, store)
        case .recoveryCodes:
            guard record.recoveryCodesLeft > 0 else { return ("nothing to do: no unused recovery codes", false) }
            try await store.replaceRecoveryCodes(user: user, codes: [])
            return ("the backup's recovery codes voided (the user needs 'twofoldctl recovery-codes')", true)
        case .contacts(let channel, let masked):
            let matching = record.contacts.filter { $0.channel == channel && (masked == nil || $0.masked == masked) }
            return try await removeContacts(matching, of: user, store)
        case .contactReplaced(let channel, let masked):
            let replaced = record.contacts.filter { $0.channel == channel && $0.isVerified && $0.masked != masked }
            return try await removeContacts(replaced, of: user, store)
        case .key(let name):
            let removed = try await store.removeKey(user: user, name: name)
            return removed > 0 ? ("\(removed) security key\(removed == 1 ? "" : "s") removed", true) : ("nothing to do: no such key in the backup", false)
        case .sshKey(let name):
            let removed = try await store.removeSSHKey(user: user, name: name)
            return removed > 0 ? ("\(removed) SSH key\(removed == 1 ? "" : "s") removed", true) : ("nothing to do: no such SSH key in the backup", false)
        case .requirement(let value):
            guard record.requirement != value else { return ("nothing to do: the override is already \(value.rawValue)", false) }
            try await store.setRequirement(user: user, value)
            return ("override set to \(value.rawValue) again", true)
        case .host:
            return ("", false)
        }
    }

    /// Every OTP factor of the backup's user: the record did not say which one was replaced.
    private static func removeFactors(_ names: [String], of user: String, _ store: any TwofoldStore) async throws -> (String, Bool) {
        guard !names.isEmpty else { return ("nothing to do: no app factor in the backup", false) }
        for name in names { _ = try await store.removeFactor(user: user, name: name) }
        return ("every app factor removed (\(names.joined(separator: ", "))): the record does not say which one was replaced", true)
    }

    /// Contacts by their full address; a masked record may match several: all go (the safe side).
    private static func removeContacts(_ contacts: [Contact], of user: String, _ store: any TwofoldStore) async throws -> (String, Bool) {
        guard !contacts.isEmpty else { return ("nothing to do: no such contact in the backup", false) }
        for contact in contacts { _ = try await store.removeContact(user: user, channel: contact.channel, value: contact.value) }
        let names = contacts.map { "\($0.channel.rawValue) \($0.masked)" }.joined(separator: ", ")
        return ("removed \(names)" + (contacts.count > 1 ? " (the record's masked address matches each: all removed)" : ""), true)
    }
}
