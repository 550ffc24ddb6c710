import Foundation
import TwofoldProtocol

/// Human output: times, tables, and the blocks `status`, `user show` and `policy show` print.
enum Format {
    /// Local time, e.g. `2026-01-02 10:00:00 +01:00`.
    static func time(millis: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss xxx"
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    /// The base32 secret in groups of four for typing.
    static func grouped(_ secret: String, by size: Int = 4) -> String {
        var groups: [String] = []
        var index = secret.startIndex
        while index < secret.endIndex {
            let end = secret.index(index, offsetBy: size, limitedBy: secret.endIndex) ?? secret.endIndex
            groups.append(String(secret[index ..< end]))
            index = end
        }
        return groups.joined(separator: " ")
    }

    /// Left-aligned columns separated by two spaces; trailing spaces trimmed. Cells hold what
    /// clients sent (user names, PAM_RHOST, PAM_TTY): each is escaped, so no terminal control
    /// sequence or spoofing character reaches the admin's terminal.
    static func table(header: [String], rows: [[String]]) -> String {
        let rows = rows.map { $0.map(DisplayText.escaped) }
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            var line = ""
            for (i, cell) in cells.enumerated() {
                line += cell
                if i < cells.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
        return ([render(header)] + rows.map(render)).joined(separator: "\n") + "\n"
    }

    /// `label:  value` lines with the values aligned; values escaped as in `table`.
    static func fields(_ pairs: [(String, String)]) -> String {
        let width = (pairs.map(\.0.count).max() ?? 0) + 2
        return pairs.map { label, value in
            label + ":" + String(repeating: " ", count: width - label.count - 1) + DisplayText.escaped(value)
        }.joined(separator: "\n") + "\n"
    }

    static func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }

    static func required(_ status: UserStatus) -> String {
        "\(yesNo(status.required)) (\(status.requiredBecause))"
    }

    /// When, and on which host of the fleet when one is known ("… on bastion-1").
    static func lastSuccess(_ status: UserStatus) -> String {
        guard let millis = status.lastSuccessMillis else { return "never" }
        return time(millis: millis) + (status.lastSuccessHost.map { " on \($0)" } ?? "")
    }

    static func locked(_ status: UserStatus) -> String {
        guard let until = status.lockedUntilMillis else { return "no" }
        return "until \(time(millis: until))"
    }

    /// The kinds of the active factors as the daemon joins them ("hotp,totp"), for reading ("hotp, totp").
    /// A verified contact's kind is email or sms.
    static func method(_ status: UserStatus) -> String? {
        status.method.map { $0.split(separator: ",").joined(separator: ", ") }
    }

    /// The active factors (apps, tokens): their names, or their count where the daemon gives only kinds.
    static func factors(_ status: UserStatus) -> String? {
        guard let names = status.factors else { return nil }
        if names.isEmpty {
            var besides: [String] = []
            if !verifiedContacts(status).isEmpty { besides.append("the contacts") }
            if !(status.keys ?? []).isEmpty { besides.append("the security keys") }
            return besides.isEmpty ? "none" : "none besides " + besides.joined(separator: " and ")
        }
        return "\(names.count): " + names.joined(separator: ", ")
    }

    /// The user's security keys: how many, and their names ("2: blue, backup"); nil when there are
    /// none, or from a daemon before keys (so the line is left out rather than wrong).
    static func keys(_ status: UserStatus) -> String? {
        guard let keys = status.keys, !keys.isEmpty else { return nil }
        return "\(keys.count): " + keys.map(\.name).joined(separator: ", ")
    }

    /// The `users` table's cell: the number of keys, "-" for none or unknown.
    static func keyCount(_ status: UserStatus) -> String {
        guard let keys = status.keys, !keys.isEmpty else { return "-" }
        return String(keys.count)
    }

    /// The user's verified contacts (nil from a daemon before contacts).
    static func verifiedContacts(_ status: UserStatus) -> [ContactInfo] {
        (status.contacts ?? []).filter(\.verified)
    }

    /// "email a***@example.com", "phone +49 *** *** 12" (masked as the daemon sends them).
    static func contact(_ info: ContactInfo) -> String {
        "\(info.channel == "sms" ? "phone" : info.channel) \(info.masked)"
    }

    /// The contacts of `status`: the verified ones, then any waiting for its code (so marked).
    static func contacts(_ status: UserStatus) -> String? {
        guard let all = status.contacts, !all.isEmpty else { return nil }
        let verified = all.filter(\.verified).map(contact)
        let waiting = all.filter { !$0.verified }.map { contact($0) + " (waiting for its code)" }
        return (verified + waiting).joined(separator: ", ")
    }

    static func enrollment(_ status: UserStatus) -> String {
        switch status.enrollment {
        case "active": return "active" + (method(status).map { " (\($0))" } ?? "")
        case "pending": return "pending (not confirmed yet)"
        case "none": return "not enrolled"
        default: return status.enrollment
        }
    }

    /// The block of `status` and `user show`.
    static func status(_ status: UserStatus) -> String {
        var pairs: [(String, String)] = [
            ("User", status.user),
            ("2FA", enrollment(status)),
        ]
        if status.enrollment == "active", let factors = factors(status) { pairs.append(("Factors", factors)) }
        if let contacts = contacts(status) { pairs.append(("Contacts", contacts)) }
        if let keys = keys(status) { pairs.append(("Security keys", keys)) }
        pairs += [
            ("Required", required(status)),
            ("Override", status.override),
        ]
        if let grace = status.graceUntilMillis { pairs.append(("Grace until", time(millis: grace))) }
        pairs += [
            ("Recovery codes", "\(status.recoveryCodesLeft) left"),
            ("Failures", "\(status.failures)"),
            ("Locked", locked(status)),
            ("Last success", lastSuccess(status)),
        ]
        return fields(pairs)
    }

    /// The block of `policy show` and `policy set`, and a note when codes by email or text
    /// message are allowed anywhere.
    static func policy(_ policy: PolicyDocument) -> String {
        fields(policyFields(policy)) + (allowsDeliveredCodes(policy) ? "\n" + deliveredCodesNote + "\n" : "")
    }

    static let deliveredCodesNote = "Note: NIST SP 800-63B does not accept email as an out-of-band authenticator; it calls SMS (PSTN) restricted."

    /// Whether the default kinds, a service's or a host's allow email or sms.
    static func allowsDeliveredCodes(_ policy: PolicyDocument) -> Bool {
        let lists = [policy.factorKinds] + Array(policy.serviceFactorKinds.values) + Array(policy.hostFactorKinds.values)
        return lists.contains { $0.contains("email") || $0.contains("sms") }
    }

    /// What `policy set` changes, as the lines of `policy show` that differ.
    static func policyChanges(from old: PolicyDocument, to new: PolicyDocument) -> [PolicyChange] {
        zip(policyFields(old), policyFields(new)).compactMap { before, after in
            before.1 == after.1 ? nil : PolicyChange(field: before.0, from: before.1, to: after.1)
        }
    }

    /// Who a policy change affects (`policy set --dry-run`, and before a change that locks users out).
    static func impact(_ impact: PolicyImpact) -> String {
        var text = "Users considered: \(impact.usersConsidered) (\(impact.sources.joined(separator: ", ")))\n"
        for note in impact.notes { text += "Note: \(note)\n" }
        text += "Required: \(impact.requiredBefore) now, \(impact.requiredAfter) after "
        text += "(\(impact.newlyRequired) newly required, \(impact.noLongerRequired) no longer required)\n"
        text += "Refused at their next login after the change: \(impact.refused) (\(impact.newlyRefused) who are not refused now)\n"
        if impact.grace > 0 { text += "In a grace period (let in without a code until it ends): \(impact.grace)\n" }
        guard !impact.users.isEmpty else { return text }
        let rows = impact.users.map { entry -> [String] in
            var after = entry.atLogin.rawValue
            if let end = entry.graceUntilMillis { after += " until \(time(millis: end))" }
            return [entry.user, entry.enrollment, entry.atLoginBefore.rawValue, after, entry.because]
        }
        text += "\n" + table(header: ["USER", "ENROLLMENT", "NOW", "AFTER", "WHY (AFTER)"], rows: rows)
        if impact.truncated { text += "(only the first \(impact.users.count) users are listed)\n" }
        return text
    }

    /// The default list of factor kinds, then the host and service lists that replace it.
    private static func kindsText(_ policy: PolicyDocument) -> String {
        var parts = [policy.factorKinds.joined(separator: ",")]
        parts += policy.hostFactorKinds.sorted { $0.key < $1.key }.map { "host \($0.key)=\($0.value.joined(separator: ","))" }
        parts += policy.serviceFactorKinds.sorted { $0.key < $1.key }.map { "service \($0.key)=\($0.value.joined(separator: ","))" }
        return parts.joined(separator: "; ")
    }

    /// `policy explain`: the decision, then each level of the chain.
    static func explanation(_ e: PolicyExplanation) -> String {
        let login = "\(DisplayText.escaped(e.user))" + (e.service.map { " on service \(DisplayText.escaped($0))" } ?? "")
            + " on host \(DisplayText.escaped(e.host))"
        var text = "\(login): 2FA \(e.required ? "required" : "not required") (\(e.because)), decided by the \(e.decidedBy) level.\n"
        var next = "Next login: " + e.atLogin.rawValue
        if let end = e.graceUntilMillis { next += " until \(time(millis: end))" }
        text += next + " (enrollment: \(e.enrollment))\n"
        // The reasons name hosts (the caller's --host among them): escaped, as every text from the daemon.
        if !e.factorKinds.isEmpty {
            text += "Factor kinds allowed: \(e.factorKinds.joined(separator: ", ")) (\(DisplayText.escaped(e.factorKindsBecause)))\n"
        }
        if let keys = e.sshKeys { text += "SSH keys served: \(DisplayText.escaped(keys)) (\(DisplayText.escaped(e.sshKeysBecause ?? "")))\n" }
        text += "\n"
        let rows = e.chain.enumerated().map { index, step in
            ["\(index + 1). \(step.level)", step.rule ?? "(no rule)", step.decided ? "<- decides" : ""]
        }
        return text + table(header: ["LEVEL", "RULE", ""], rows: rows)
    }

    private static func policyFields(_ policy: PolicyDocument) -> [(String, String)] {
        let services = policy.services.isEmpty
            ? "(none)"
            : policy.services.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        let hosts = policy.hosts.isEmpty
            ? "(none)"
            : policy.hosts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        var grace: [String] = []
        if let days = policy.graceDays { grace.append("\(days) days") }
        if let deadline = policy.graceDeadlineMillis { grace.append("until \(time(millis: deadline))") }
        return [
            ("Require", policy.require),
            ("Required groups", policy.requiredGroups.isEmpty ? "(none)" : policy.requiredGroups.joined(separator: ",")),
            ("Services", services),
            ("Hosts", hosts),
            ("Factor kinds", kindsText(policy)),
            ("Unenrolled users", policy.unenrolled),
            ("Grace", grace.isEmpty ? "(none)" : grace.joined(separator: ", whichever ends first: ")),
            ("Self-enrollment", yesNo(policy.selfEnrollment)),
            ("Allow disable", yesNo(policy.allowDisable)),
            ("Enrollment codes", "\(policy.enrollmentCodes)"),
            ("New secrets", "\(policy.algorithm), \(policy.digits) digits, \(policy.period) s period"),
            ("Delivered codes", "\(policy.deliveredCodeDigits) digits (email, sms)"),
            ("Key verification", policy.fido2UserVerification ? "required (the key's PIN or built-in biometrics)" : "not required (a touch)"),
            ("Key models", policy.fido2AAGUIDs.isEmpty ? "(any)" : policy.fido2AAGUIDs.joined(separator: ",")),
            ("SSH key types", policy.sshKeyTypes == "any" ? "any (sk- and plain keys)" : "\(policy.sshKeyTypes) (hardware-backed sk- keys only)"),
            ("SSH verification", policy.sshVerifyRequired ? "required (verify-required: the key's PIN or built-in)" : "not required (a touch)"),
            ("SSH keys by host", policy.hostSSHKeys.isEmpty ? "(none: the two lines above everywhere)"
                : policy.hostSSHKeys.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")),
            ("Window", "±\(policy.window) steps, max drift \(policy.maxDrift)"),
            ("Throttle", "delay \(policy.throttleDelayMillis) ms doubling to \(policy.throttleMaxDelayMillis) ms"),
            ("Lock", "after \(policy.maxFailures) failures, for \(policy.lockSeconds) s"),
            ("Fleet admins", policy.admins.isEmpty ? "(none)" : policy.admins.joined(separator: ",")),
            ("Admin hosts", policy.adminHosts.isEmpty ? "(none: admin requests only on the servers)" : policy.adminHosts.joined(separator: ",")),
            ("Enroll hosts", policy.enrollHosts.isEmpty ? "(none: enrollment only on the servers)" : policy.enrollHosts.joined(separator: ",")),
            ("Admin session", "\(policy.adminSessionMinutes) min"),
        ]
    }

    /// Recovery codes, one per line, numbered.
    static func recoveryCodes(_ codes: [String]) -> String {
        let width = String(codes.count).count
        return codes.enumerated().map { index, code in
            let number = String(index + 1)
            return "  " + String(repeating: " ", count: width - number.count) + number + ". " + code
        }.joined(separator: "\n") + "\n"
    }
}

/// Times the user types: `2026-01-01`, `2026-01-01 12:00`, `2026-01-01T12:00:00`, or an age such as `90m`, `1h`, `7d`.
enum TimeArgument {
    /// Milliseconds since the epoch, or nil if the text is not a time.
    static func millis(_ text: String, now: Date = Date()) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let unit = trimmed.last, let count = Int64(trimmed.dropLast()), count >= 0 {
            let seconds: Int64?
            switch unit {
            case "s": seconds = 1
            case "m": seconds = 60
            case "h": seconds = 3600
            case "d": seconds = 86_400
            case "w": seconds = 7 * 86_400
            default: seconds = nil
            }
            if let seconds {
                let (product, overflow) = count.multipliedReportingOverflow(by: seconds * 1000)
                guard !overflow else { return nil }
                return Int64(now.timeIntervalSince1970 * 1000) - product
            }
        }
        return date(trimmed)
    }

    /// A calendar date or date and time, in local time.
    static func date(_ text: String) -> Int64? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.isLenient = false
        for format in ["yyyy-MM-dd", "yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        return nil
    }
}

/// One field `policy set` changes.
struct PolicyChange: Encodable {
    var field: String
    var from: String
    var to: String
}
