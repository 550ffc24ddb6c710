import Foundation
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// A revocation found in an audit export: something the restored copy still has that was taken
/// away after it was made. Read from the records' action, outcome and reason (never a secret).
public struct Revocation: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        /// `twofoldctl user revoke`, or the user turned 2FA off: everything of the user.
        case user
        /// One OTP factor removed, or replaced by a new secret (the copy holds the old one).
        case factor(String)
        /// Every OTP factor of the user (an enrollment the record does not name, or one at login).
        case allFactors
        /// The user got a new set of recovery codes: the copy's set was voided.
        case recoveryCodes
        /// Contacts of a channel removed: the one whose masked form this is (nil: all of them).
        case contacts(channel: DeliveryChannel, masked: String?)
        /// A contact verified or imported: the channel's other verified contact was replaced.
        case contactReplaced(channel: DeliveryChannel, masked: String)
        case key(String?)
        case sshKey(String?)
        case host(String)
        case requirement(RequirementOverride)
    }

    public var timeMillis: Int64
    public var user: String?
    public var kind: Kind
    /// The record as the export had it, for the summary ("factor: factor 'phone' removed").
    public var record: String
}

/// Reads audit exports (`twofoldctl audit --json`: an array or one object a line; `journalctl -o
/// json` lines of twofoldd) and finds the revocations made after the copy was taken.
public enum AuditRevocations {
    /// The revocations of `records` at or after `takenMillis`, oldest first.
    public static func find(in records: [AuditEntry], after takenMillis: Int64) -> [Revocation] {
        let sorted = records.sorted { $0.timeMillis < $1.timeMillis }
        var found: [Revocation] = []
        for (index, entry) in sorted.enumerated() where entry.timeMillis >= takenMillis {
            for kind in kinds(of: entry, earlier: sorted[..<index]) {
                found.append(Revocation(timeMillis: entry.timeMillis, user: entry.user, kind: kind,
                                        record: "\(entry.action): \(entry.reason ?? entry.outcome)"))
            }
        }
        return found
    }

    /// The codes accepted at or after `takenMillis`, by user and factor: each record of a success
    /// names its factor and the offset it was found at ("code at offset 3, factor 'app'", written by
    /// `Authenticator.describe`); the restore moves each factor past them (`RestoreReplay`).
    public static func codeUses(in records: [AuditEntry], after takenMillis: Int64) -> [String: [String: [RestoreReplay.Use]]] {
        var uses: [String: [String: [RestoreReplay.Use]]] = [:]
        for entry in records where entry.timeMillis >= takenMillis && entry.action == "verify" && entry.outcome == "success" {
            guard let user = entry.user, let reason = entry.reason, reason.hasPrefix(codeAtOffset),
                  let offset = Int(reason.dropFirst(codeAtOffset.count).prefix { $0 == "-" || $0.isNumber }),
                  let factor = quoted(reason, after: "factor ", before: nil) else { continue }
            uses[user, default: [:]][factor, default: []].append(RestoreReplay.Use(timeMillis: entry.timeMillis, offset: offset))
        }
        return uses
    }

    static let codeAtOffset = "code at offset "

    /// What one record revokes (nothing for most records).
    static func kinds(of entry: AuditEntry, earlier: ArraySlice<AuditEntry>) -> [Revocation.Kind] {
        guard entry.outcome == "success" else { return [] }
        let reason = entry.reason ?? ""
        if entry.action == "host" { return quoted(reason, after: "host ", before: " revoked").map { [Revocation.Kind.host($0)] } ?? [] }
        guard entry.user != nil else { return [] }
        switch entry.action {
        case "revoke", "disable":
            return [.user]
        case "factor":
            return quoted(reason, after: "factor ", before: " removed").map { [Revocation.Kind.factor($0)] } ?? []
        case "enroll":
            return enrollment(reason, user: entry.user, earlier: earlier)
        case "import":
            guard let factor = quoted(reason, after: "factor ", before: " imported") else { return [] }
            return [.factor(factor)] + (reason.contains(" with 0 recovery codes") ? [] : [.recoveryCodes])
        case "recovery":
            return reason.hasPrefix("new set") ? [.recoveryCodes] : []
        case "contact":
            return contact(reason)
        case "key":
            return reason.contains(" removed") ? [.key(quoted(reason, after: "key ", before: " removed"))] : []
        case "ssh-key":
            return reason.contains(" removed") ? [.sshKey(quoted(reason, after: "SSH key ", before: " removed"))] : []
        case "policy":
            let prefix = "override set to "
            guard reason.hasPrefix(prefix), let value = RequirementOverride(rawValue: String(reason.dropFirst(prefix.count))) else { return [] }
            return [.requirement(value)]
        default:
            return []
        }
    }

    /// An enrollment that became active: the factor it names (since the daemon names it), else the
    /// one its pending record named when that replaced a factor, else every OTP factor (the safe side).
    static func enrollment(_ reason: String, user: String?, earlier: ArraySlice<AuditEntry>) -> [Revocation.Kind] {
        if reason == "enrolled at login" { return [.allFactors] }  // only a user without a factor enrolls at login
        if let factor = quoted(reason, after: "enrollment of factor ", before: " active") { return [.factor(factor)] }
        guard reason == "enrollment active" else { return [] }
        let pending = earlier.last { $0.action == "enroll" && $0.outcome == "pending" && $0.user == user }
        guard let text = pending?.reason, let factor = quoted(text, after: "factor ", before: nil) else { return [.allFactors] }
        return text.contains("replaces it") ? [.factor(factor)] : []
    }

    static func contact(_ reason: String) -> [Revocation.Kind] {
        let words = reason.split(separator: " ", maxSplits: 3).map(String.init)
        if words.count >= 3, let channel = DeliveryChannel(rawValue: words[1]), words[2].hasPrefix("contact"), reason.contains(" removed") {
            let masked = reason.firstIndex(of: "(").flatMap { open in
                reason.lastIndex(of: ")").map { String(reason[reason.index(after: open)..<$0]) }
            }
            return [.contacts(channel: channel, masked: masked)]
        }
        if words.count >= 3, let channel = DeliveryChannel(rawValue: words[0]),
           reason.hasSuffix(" verified") || reason.hasSuffix(" imported as verified by an admin") {
            return [.contactReplaced(channel: channel, masked: words[1])]
        }
        return []
    }

    /// The text between `'` quotes that follows `prefix` (and comes before `suffix`, when given).
    static func quoted(_ text: String, after prefix: String, before suffix: String?) -> String? {
        guard let start = text.range(of: prefix + "'")?.upperBound else { return nil }
        let rest = text[start...]
        let end: String.Index?
        if let suffix { end = rest.range(of: "'" + suffix)?.lowerBound } else { end = rest.firstIndex(of: "'") }
        guard let end, end > start else { return nil }
        return String(rest[..<end])
    }
}
