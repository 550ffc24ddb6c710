#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import TwofoldCore
import TwofoldProtocol
import TwofoldStore
import TwofoldSystemd

/// Who a policy requires and what each of them gets at the next login, over every user the system
/// can list: the users Twofold knows, the accounts `getpwent` enumerates that can log in, and the
/// members of the required groups. `policy set --dry-run` compares the policy in force with a
/// proposed one; `doctor` surveys the one in force (who would be refused).
struct PolicyImpactSurvey {
    let store: any TwofoldStore
    let clock: any WallClock

    func survey(current: Policy, proposed: Policy) async throws -> PolicyImpact {
        var records: [String: UserRecord] = [:]
        var after: String?
        while true {
            let page = try await store.listUsers(after: after, limit: 10_000)
            for record in page { records[record.name] = record }
            guard let last = page.last, page.count == 10_000 else { break }
            after = last.name
        }
        let groupNames = Set(current.document.requiredGroups + proposed.document.requiredGroups)
        let known = Set(records.keys)
        let (system, notes, groups) = try await NIOThreadPool.singleton.runIfActive {
            SystemAccounts.enumerate(requiredGroups: groupNames, alsoKnown: known)
        }
        var sources = ["twofold database (\(records.count))", "passwd (\(system.passwdCount) accounts that can log in)"]
        for group in groupNames.sorted() { sources.append("group \(group) (\(system.groupMembers[group]?.count ?? 0) members)") }

        let now = clock.nowMillis()
        var impact = PolicyImpact(usersConsidered: 0, sources: sources, notes: notes, requiredBefore: 0, requiredAfter: 0,
                                  newlyRequired: 0, noLongerRequired: 0, refused: 0, newlyRefused: 0, grace: 0, users: [], truncated: false)
        let candidates = known.union(system.names).sorted()
        impact.usersConsidered = candidates.count
        for user in candidates {
            let record = records[user]
            let override = record?.requirement ?? .policy
            let memberOf = { (_: String) in groups[user] ?? [] }
            let before = Self.requiredAnywhere(current, user: user, override: override, groups: memberOf)
            let after = Self.requiredAnywhere(proposed, user: user, override: override, groups: memberOf)
            let (atLoginBefore, _) = Self.atLogin(current, required: before.required, record: record, now: now)
            let (atLogin, graceEnd) = Self.atLogin(proposed, required: after.required, record: record, now: now)
            if before.required { impact.requiredBefore += 1 }
            if after.required { impact.requiredAfter += 1 }
            if after.required && !before.required { impact.newlyRequired += 1 }
            if before.required && !after.required { impact.noLongerRequired += 1 }
            if atLogin == .refused { impact.refused += 1 }
            if atLogin == .refused && atLoginBefore != .refused { impact.newlyRefused += 1 }
            if atLogin == .grace { impact.grace += 1 }
            guard before.required != after.required || atLogin != atLoginBefore || atLogin == .refused || atLogin == .grace else { continue }
            guard impact.users.count < PolicyImpact.maxListed else { impact.truncated = true; continue }
            impact.users.append(PolicyImpact.Entry(user: user, enrollment: record?.status?.rawValue ?? "none",
                                                   requiredBefore: before.required, requiredAfter: after.required,
                                                   because: after.because, atLoginBefore: atLoginBefore, atLogin: atLogin,
                                                   graceUntilMillis: graceEnd))
        }
        return impact
    }

    /// Required for at least one service on this host: by an override or this host's rule, by the
    /// default rule (which covers every service without a rule of its own), or by a service whose
    /// rule is `required`.
    static func requiredAnywhere(_ policy: Policy, user: String, override: RequirementOverride,
                                 groups: (String) -> Set<String>) -> (required: Bool, because: String) {
        let byDefault = policy.requirement(user: user, service: nil, host: HostName.local, override: override, groups: groups)
        // An override or this host's rule decides for every service here.
        if byDefault.required || override != .policy || HostPattern.lookup(HostName.local, in: policy.hosts) != nil { return byDefault }
        if let service = policy.services.filter({ $0.value == .required }).keys.sorted().first {
            return (true, "service \(service): required")
        }
        return byDefault
    }

    /// What the user gets at the next login: the same decision as `Authenticator` makes, without
    /// its side effects (a grace period that has not started would start now).
    static func atLogin(_ policy: Policy, required: Bool, record: UserRecord?, now: Int64, service: String? = nil,
                        host: String = HostName.local) -> (PolicyImpact.AtLogin, Int64?) {
        if let record, record.status == .active {
            // An enrolled user is asked for a code, required or not, if a factor of theirs may be used here.
            let allowed = policy.allowedKinds(user: record.factorKinds, service: service, host: host).kinds
            let contactsOnly = record.factors.isEmpty && !record.hasFactor(ofKindIn: allowed)
            // Only contacts of kinds not allowed here: a required user is treated as one without a factor.
            if !(contactsOnly && required) {
                let usable = !contactsOnly && (allowed.contains(.recovery) || record.hasFactor(ofKindIn: allowed))
                return (usable ? .code : .refused, nil)
            }
        }
        guard required else { return (.notRequired, nil) }
        switch policy.unenrolled {
        case .enroll: return (.enroll, nil)
        case .deny: return (.refused, nil)
        case .grace:
            guard let end = policy.graceEnd(firstRequiredMillis: record?.firstRequiredMillis ?? now), now < end else { return (.refused, nil) }
            return (.grace, end)
        }
    }
}

/// The accounts NSS can list, for the survey. Blocking: run it on the thread pool.
enum SystemAccounts {
    struct Listing {
        var names: Set<String> = []
        var passwdCount = 0
        var groupMembers: [String: [String]] = [:]
    }

    /// Accounts that can log in (uid 0 or from UID_MIN, a shell that is not nologin/false), the
    /// members of `requiredGroups`, the groups of each (for the groups rule), and notes on what
    /// could not be listed.
    static func enumerate(requiredGroups: Set<String>, alsoKnown: Set<String>) -> (Listing, [String], [String: Set<String>]) {
        var listing = Listing()
        var notes: [String] = []
        let uidMin = loginDefsUIDMin()
        setpwent()
        while let entry = getpwent() {
            let uid = entry.pointee.pw_uid
            let shell = String(cString: entry.pointee.pw_shell)
            guard uid == 0 || (uid >= uidMin && uid != 65_534), !shell.hasSuffix("/nologin"), !shell.hasSuffix("/false") else { continue }
            listing.names.insert(String(cString: entry.pointee.pw_name))
        }
        endpwent()
        listing.passwdCount = listing.names.count
        for group in requiredGroups.sorted() {
            guard let members = groupMembers(group) else {
                notes.append("required group '\(group)' does not exist")
                continue
            }
            // Primary members are not in gr_mem; they came from passwd above.
            listing.groupMembers[group] = members
            listing.names.formUnion(members)
        }
        let sources = nonEnumeratingSources()
        if !sources.isEmpty {
            notes.append("passwd also comes from \(sources.joined(separator: ", ")) (nsswitch.conf), which may not list its users "
                         + "(sssd enumerates only with enumerate = true): users from there are counted only once Twofold knows them "
                         + "or they are listed members of a required group")
        }
        var groups: [String: Set<String>] = [:]
        if !requiredGroups.isEmpty {
            for name in listing.names.union(alsoKnown) { groups[name] = Accounts.groups(of: name) }
        }
        return (listing, notes, groups)
    }

    static func groupMembers(_ name: String) -> [String]? {
        var grp = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(name, &grp, &buffer, buffer.count, &result) == 0, let found = result else { return nil }
        var members: [String] = []
        var cursor = found.pointee.gr_mem
        while let member = cursor?.pointee {
            members.append(String(cString: member))
            cursor = cursor?.advanced(by: 1)
        }
        return members
    }

    /// UID_MIN from /etc/login.defs (1000 when absent).
    static func loginDefsUIDMin() -> UInt32 {
        guard let text = try? ConfigFile.read("/etc/login.defs", required: false, error: ConfigurationError.init) else { return 1000 }
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.count >= 2, words[0] == "UID_MIN", let value = UInt32(words[1]) { return value }
        }
        return 1000
    }

    /// The passwd sources of nsswitch.conf that are not local files (sss, ldap, winbind...).
    static func nonEnumeratingSources() -> [String] {
        guard let text = try? ConfigFile.read("/etc/nsswitch.conf", required: false, error: ConfigurationError.init) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("passwd:") {
            return line.dropFirst("passwd:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
                .map(String.init)
                .filter { !$0.hasPrefix("[") && !["files", "compat", "systemd", "db"].contains($0) }
        }
        return []
    }
}
