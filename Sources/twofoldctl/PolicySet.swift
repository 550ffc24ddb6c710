import ArgumentParser
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.Policy {
    struct Set: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change some fields of the policy; the others keep their values.",
            discussion: """
                Reads the policy in force, changes only the fields given, sends it back whole, and \
                prints the result. The daemon checks the values and refuses the whole change if one \
                is out of range. Dates are midnight local time.

                Before changing anything, the daemon works out who the new policy would affect, over \
                every user the system can list (the users Twofold knows, the accounts in passwd that \
                can log in, the members of required groups). --dry-run prints that and the fields \
                that would change, and changes nothing. A change that would refuse users at their \
                next login who are not refused now (required, not enrolled, no enrollment at login \
                and no grace) asks for confirmation on a terminal, and otherwise is refused (exit \
                status 7) unless --yes is given.

                The factor kinds are totp, hotp, recovery, email, sms and fido2. Email and sms (a code \
                sent to the user's verified contact, see 'twofoldctl contact') are in no list until an \
                admin adds them; NIST SP 800-63B does not accept email as an out-of-band \
                authenticator and calls SMS (PSTN) restricted, so 'policy show' notes it while they \
                are allowed anywhere. fido2 is a security key (see 'twofoldctl key'): a login offers \
                it only where its list has fido2, the daemon has fido2_rp_id set, and the PAM module \
                can talk to keys. --fido2-user-verification on makes every key login and \
                registration verify the user (the key's PIN or built-in biometrics); --fido2-aaguid \
                lets only those key models (AAGUIDs, as UUIDs) be registered, their attestation \
                checked against twofoldd's fido2_attestation_ca; keys already registered stay.

                SSH keys (see 'twofoldctl ssh-key'): --ssh-key-types sk registers and serves only \
                hardware-backed sk- keys, any also plain keys (ssh-ed25519, ecdsa, ssh-rsa); \
                --ssh-verify-required on serves every key with verify-required, so sshd wants the \
                key's PIN (or built-in verification) as well as a touch: keys made without one stop \
                working (set PubkeyAuthOptions verify-required in sshd_config too; 'twofoldctl \
                doctor' checks it). --host-ssh-keys gives one host (or a pattern) its own rule in \
                place of those two: sk or any, optionally followed by ,verify-required; 'twofoldctl \
                user ssh-key-rule' gives one user theirs (the chain: user › host › default; 'policy \
                explain' shows which level decides). The host is the one sshd runs on.

                Examples:
                  twofoldctl policy set --require everyone --dry-run
                  twofoldctl policy set --require groups --required-groups wheel,ssh-users
                  twofoldctl policy set --service sshd=required --service sudo=optional
                  twofoldctl policy set --host bastion=required --host 'build-*=optional'
                  twofoldctl policy set --admins alice,bob --admin-hosts 'bastion-*' --enroll-hosts 'bastion-*'
                  twofoldctl policy set --unenrolled grace --grace-days 14 --grace-deadline 2026-03-01
                  twofoldctl policy set --host-factor-kinds 'kiosk-*=totp,recovery,sms' --delivered-code-digits 8
                  twofoldctl policy set --factor-kinds totp,recovery,fido2 --fido2-user-verification on
                  twofoldctl policy set --fido2-aaguid cb69481e-8ff7-4039-93ec-0a2729a154a8
                  twofoldctl policy set --ssh-key-types sk --ssh-verify-required on
                  twofoldctl policy set --host-ssh-keys 'bastion-*=sk,verify-required' --host-ssh-keys build-1=any
                """
        )

        enum Rule: String, ExpressibleByArgument, CaseIterable { case nobody, everyone, groups }
        enum Unenrolled: String, ExpressibleByArgument, CaseIterable { case enroll, deny, grace }
        enum OnOff: String, ExpressibleByArgument, CaseIterable { case on, off }
        enum SSHKeyTypes: String, ExpressibleByArgument, CaseIterable { case sk, any }
        enum Algorithm: String, ExpressibleByArgument, CaseIterable {
            case sha1 = "SHA1", sha256 = "SHA256", sha512 = "SHA512"
            init?(argument: String) { self.init(rawValue: argument.uppercased().filter { $0 != "-" }) }
        }

        @Option(help: ArgumentHelp("Who must use 2FA by default.", valueName: "rule"))
        var require: Rule?

        @Option(help: ArgumentHelp("Groups whose members must use 2FA with --require groups (comma-separated; \"\" for none).", valueName: "groups"))
        var requiredGroups: String?

        @Option(help: ArgumentHelp("Per PAM service: required, optional, or default to remove the entry (repeatable).", valueName: "name=required|optional|default"))
        var service: [String] = []

        @Option(help: ArgumentHelp("Per host (its name, or a pattern such as 'bastion-*'): required, optional, or default to remove the entry (repeatable); a host rule comes before service rules, and a host's own name before the longest pattern that matches it.", valueName: "name=required|optional|default"))
        var host: [String] = []

        @Option(help: ArgumentHelp("Factor kinds a login may use by default (comma-separated: totp, hotp, recovery, email, sms, fido2).", valueName: "kinds"))
        var factorKinds: String?

        @Option(help: ArgumentHelp("Factor kinds for one PAM service, or default to remove the entry (repeatable).", valueName: "name=kinds|default"))
        var serviceFactorKinds: [String] = []

        @Option(help: ArgumentHelp("Factor kinds for one host, or default to remove the entry (repeatable).", valueName: "name=kinds|default"))
        var hostFactorKinds: [String] = []

        @Option(help: ArgumentHelp("What a required user who has not enrolled gets at login.", valueName: "action"))
        var unenrolled: Unenrolled?

        @Option(help: ArgumentHelp("Grace period in days from when the rule first applied to a user, or none.", valueName: "days"))
        var graceDays: String?

        @Option(help: ArgumentHelp("End of every grace period (YYYY-MM-DD), or none.", valueName: "date"))
        var graceDeadline: String?

        @Option(help: ArgumentHelp("Whether users may turn 2FA on themselves.", valueName: "true|false"))
        var selfEnrollment: Bool?

        @Option(help: ArgumentHelp("Whether users who are not required may turn 2FA off.", valueName: "true|false"))
        var allowDisable: Bool?

        @Option(help: ArgumentHelp("Codes asked at enrollment: 1, or 2 consecutive codes.", valueName: "1|2"))
        var enrollmentCodes: Int?

        @Option(help: ArgumentHelp("Digits of new secrets' codes (6 to 8).", valueName: "n"))
        var digits: Int?

        @Option(help: ArgumentHelp("Hash of new secrets.", valueName: "algorithm"))
        var algorithm: Algorithm?

        @Option(help: ArgumentHelp("Seconds per code of new secrets.", valueName: "seconds"))
        var period: Int?

        @Option(help: ArgumentHelp("Digits of the codes sent by email or text message (6 to 8).", valueName: "n"))
        var deliveredCodeDigits: Int?

        @Option(help: ArgumentHelp("Steps accepted on each side of the current one.", valueName: "steps"))
        var window: Int?

        @Option(help: ArgumentHelp("Most steps a learned clock drift may move the window.", valueName: "steps"))
        var maxDrift: Int?

        @Option(help: ArgumentHelp("Consecutive failures before a lock.", valueName: "n"))
        var maxFailures: Int?

        @Option(help: ArgumentHelp("Delay after the first failure, doubling after each further one.", valueName: "ms"))
        var throttleDelayMs: Int64?

        @Option(help: ArgumentHelp("Cap of that delay.", valueName: "ms"))
        var throttleMaxDelayMs: Int64?

        @Option(help: ArgumentHelp("How long a lock lasts.", valueName: "seconds"))
        var lockSeconds: Int?

        @Option(help: ArgumentHelp("Fleet: the users who are admins through relays, with a current code of theirs (comma-separated; \"\" for none).", valueName: "users"))
        var admins: String?

        @Option(help: ArgumentHelp("Fleet: the hosts (names or patterns, comma-separated; \"\" for none) whose relays may carry admin requests.", valueName: "hosts"))
        var adminHosts: String?

        @Option(help: ArgumentHelp("Fleet: the hosts (names or patterns, comma-separated; \"\" for none) through which users may enroll or add a factor.", valueName: "hosts"))
        var enrollHosts: String?

        @Option(help: ArgumentHelp("Fleet: how long an admin session through a relay lasts (1 to 1440).", valueName: "minutes"))
        var adminSessionMinutes: Int?

        @Option(name: .customLong("fido2-user-verification"),
                help: ArgumentHelp("Whether logins and registrations with a security key must verify the user (the key's PIN or built-in biometrics).", valueName: "on|off"))
        var fido2UserVerification: OnOff?

        @Option(name: .customLong("fido2-aaguid"),
                help: ArgumentHelp("Only security keys of this model (AAGUID, a UUID) may be registered, their attestation checked (repeatable; replaces the list).", valueName: "uuid"))
        var fido2AAGUIDs: [String] = []

        @Flag(name: .customLong("no-fido2-aaguids"), help: "Empty the AAGUID list: security keys of any model may be registered.")
        var noFido2AAGUIDs = false

        @Option(name: .customLong("ssh-key-types"),
                help: ArgumentHelp("SSH keys registered and served: sk (hardware-backed sk- keys only) or any.", valueName: "sk|any"))
        var sshKeyTypes: SSHKeyTypes?

        @Option(name: .customLong("ssh-verify-required"),
                help: ArgumentHelp("Whether sshd must see the SSH key verify the user (its PIN or built-in verification), not only a touch.", valueName: "on|off"))
        var sshVerifyRequired: OnOff?

        @Option(name: .customLong("host-ssh-keys"),
                help: ArgumentHelp("SSH keys on one host (a name or pattern): sk or any, optionally ,verify-required; or default to remove the entry (repeatable).",
                                   valueName: "name=rule|default"))
        var hostSSHKeys: [String] = []

        @Flag(help: "Print what would change and who it would affect; change nothing.")
        var dryRun = false

        @Flag(help: "Apply the change even if it refuses users at their next login (no question asked).")
        var yes = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if dryRun && yes { throw ValidationError("--dry-run and --yes do not go together.") }
            let given: [Any?] = [require, requiredGroups, unenrolled, graceDays, graceDeadline, selfEnrollment, allowDisable,
                                 enrollmentCodes, digits, algorithm, period, deliveredCodeDigits, window, maxDrift, maxFailures,
                                 throttleDelayMs, throttleMaxDelayMs, lockSeconds, admins, adminHosts, enrollHosts, adminSessionMinutes,
                                 fido2UserVerification, sshKeyTypes, sshVerifyRequired]
            let lists = [service, host, serviceFactorKinds, hostFactorKinds, fido2AAGUIDs, hostSSHKeys]
            guard lists.contains(where: { !$0.isEmpty }) || factorKinds != nil || noFido2AAGUIDs
                    || given.contains(where: { $0 != nil }) else {
                throw ValidationError("Give at least one field to change (see --help).")
            }
            for entry in service { _ = try Self.parseService(entry) }
            for entry in host { _ = try Self.parseRule(entry, option: "--host") }
            if let factorKinds { _ = try Self.parseKinds(factorKinds, option: "--factor-kinds") }
            for entry in serviceFactorKinds { _ = try Self.parseKindsEntry(entry, option: "--service-factor-kinds") }
            for entry in hostFactorKinds { _ = try Self.parseKindsEntry(entry, option: "--host-factor-kinds") }
            for entry in hostSSHKeys { _ = try Self.parseSSHKeysEntry(entry) }
            if let graceDays { _ = try Self.parseGraceDays(graceDays) }
            if let graceDeadline { _ = try Self.parseDeadline(graceDeadline) }
            if let enrollmentCodes, !(1...2).contains(enrollmentCodes) { throw ValidationError("--enrollment-codes must be 1 or 2.") }
            if let digits, !(6...8).contains(digits) { throw ValidationError("--digits must be 6, 7 or 8.") }
            if let period, period <= 0 { throw ValidationError("--period must be positive.") }
            if let deliveredCodeDigits, !DeliveredCode.digitRange.contains(deliveredCodeDigits) {
                throw ValidationError("--delivered-code-digits must be 6, 7 or 8.")
            }
            if let window, window < 0 { throw ValidationError("--window must not be negative.") }
            if let maxDrift, maxDrift < 0 { throw ValidationError("--max-drift must not be negative.") }
            if let maxFailures, maxFailures <= 0 { throw ValidationError("--max-failures must be positive.") }
            if let throttleDelayMs, throttleDelayMs < 0 { throw ValidationError("--throttle-delay-ms must not be negative.") }
            if let throttleMaxDelayMs, throttleMaxDelayMs < 0 { throw ValidationError("--throttle-max-delay-ms must not be negative.") }
            if let lockSeconds, lockSeconds <= 0 { throw ValidationError("--lock-seconds must be positive.") }
            if let adminSessionMinutes, !(1...1_440).contains(adminSessionMinutes) {
                throw ValidationError("--admin-session-minutes must be 1 to 1440.")
            }
            _ = try aaguidList()
        }

        /// The AAGUID allow-list the options ask for: nil to keep the policy's, [] for --no-fido2-aaguids.
        func aaguidList() throws -> [String]? {
            if noFido2AAGUIDs {
                guard fido2AAGUIDs.isEmpty else { throw ValidationError("--fido2-aaguid and --no-fido2-aaguids do not go together.") }
                return []
            }
            guard !fido2AAGUIDs.isEmpty else { return nil }
            var list: [String] = []
            for text in fido2AAGUIDs {
                let aaguid = try Self.parseAAGUID(text)
                if !list.contains(aaguid) { list.append(aaguid) }
            }
            return list
        }

        /// An AAGUID as a UUID (8-4-4-4-12 hex digits, either case), in the lower case the daemon
        /// stores and `key list` shows, so one model is never listed twice.
        static func parseAAGUID(_ text: String) throws -> String {
            let groups = text.split(separator: "-", omittingEmptySubsequences: false)
            guard groups.map(\.count) == [8, 4, 4, 4, 12], groups.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isHexDigit } }) else {
                throw ValidationError("--fido2-aaguid takes a UUID such as cb69481e-8ff7-4039-93ec-0a2729a154a8 (a key model's AAGUID), not '\(text)'.")
            }
            return text.lowercased()
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.policyShow)
            guard case .policy(let current) = response else { throw unexpected(response) }
            var policy = current
            do {
                try apply(to: &policy)
            } catch {
                throw CLIFailure(ExitStatus.usage, "\(error)")
            }
            let answer = try session.send(.policyImpact(proposed: policy))
            guard case .policyImpact(let impact) = answer else { throw unexpected(answer) }
            let changes = Format.policyChanges(from: current, to: policy)
            if dryRun {
                report(DryRun(changes: changes, policy: policy, impact: impact))
                return
            }
            if impact.newlyRefused > 0 && !yes { try confirmLockOut(impact, session: session) }
            let stored = try session.send(.policySet(policy))
            switch stored {
            case .ok: break
            case .policy(let document): policy = document
            default: throw unexpected(stored)
            }
            if options.json {
                Output.json(policy)
            } else {
                Output.line("Policy updated:")
                Output.raw(Format.policy(policy))
            }
        }

        /// What `--dry-run` prints (`--json`: this object).
        struct DryRun: Encodable {
            var dryRun = true
            var changes: [PolicyChange]
            var policy: PolicyDocument
            var impact: PolicyImpact
        }

        private func report(_ dryRun: DryRun) {
            if options.json {
                Output.json(dryRun)
                return
            }
            Output.line("Dry run: nothing is changed.")
            if dryRun.changes.isEmpty {
                Output.line("The policy would not change.")
            } else {
                Output.line("Would change:")
                for change in dryRun.changes { Output.line("  \(change.field): \(change.from) -> \(change.to)") }
            }
            Output.line()
            Output.raw(Format.impact(dryRun.impact))
        }

        /// A change that refuses users who are not refused now goes ahead only when confirmed: by
        /// typing yes on a terminal, or with --yes.
        private func confirmLockOut(_ impact: PolicyImpact, session: DaemonSession) throws(CLIFailure) {
            let names = impact.users.filter { $0.atLogin == .refused && $0.atLoginBefore != .refused }.map(\.user)
            let shown = names.prefix(10).map(DisplayText.escaped).joined(separator: ", ") + (names.count > 10 ? ", ..." : "")
            let summary = "this change would refuse \(impact.newlyRefused) user(s) at their next login who are not refused now (\(shown))"
            try Confirmation.require(summary, prompt: "Refuse them at their next login? Type yes to apply the change: ",
                                     instead: "see them with --dry-run, then run again with --yes to apply it",
                                     cancelled: "not changed: \(summary)", json: options.json, session: session) {
                Output.raw(Format.impact(impact))
                Output.line()
            }
        }

        private func apply(to policy: inout PolicyDocument) throws {
            if let require { policy.require = require.rawValue }
            if let requiredGroups {
                policy.requiredGroups = Self.list(requiredGroups)
            }
            for entry in service {
                let (name, value) = try Self.parseService(entry)
                if value == "default" { policy.services[name] = nil } else { policy.services[name] = value }
            }
            for entry in host {
                let (name, value) = try Self.parseRule(entry, option: "--host")
                if value == "default" { policy.hosts[name] = nil } else { policy.hosts[name] = value }
            }
            if let factorKinds { policy.factorKinds = try Self.parseKinds(factorKinds, option: "--factor-kinds") }
            for entry in serviceFactorKinds {
                let (name, kinds) = try Self.parseKindsEntry(entry, option: "--service-factor-kinds")
                policy.serviceFactorKinds[name] = kinds
            }
            for entry in hostFactorKinds {
                let (name, kinds) = try Self.parseKindsEntry(entry, option: "--host-factor-kinds")
                policy.hostFactorKinds[name] = kinds
            }
            if let unenrolled { policy.unenrolled = unenrolled.rawValue }
            if let graceDays { policy.graceDays = try Self.parseGraceDays(graceDays) }
            if let graceDeadline { policy.graceDeadlineMillis = try Self.parseDeadline(graceDeadline) }
            if let selfEnrollment { policy.selfEnrollment = selfEnrollment }
            if let allowDisable { policy.allowDisable = allowDisable }
            if let enrollmentCodes { policy.enrollmentCodes = enrollmentCodes }
            if let digits { policy.digits = digits }
            if let algorithm { policy.algorithm = algorithm.rawValue }
            if let period { policy.period = period }
            if let deliveredCodeDigits { policy.deliveredCodeDigits = deliveredCodeDigits }
            if let window { policy.window = window }
            if let maxDrift { policy.maxDrift = maxDrift }
            if let maxFailures { policy.maxFailures = maxFailures }
            if let throttleDelayMs { policy.throttleDelayMillis = throttleDelayMs }
            if let throttleMaxDelayMs { policy.throttleMaxDelayMillis = throttleMaxDelayMs }
            if let lockSeconds { policy.lockSeconds = lockSeconds }
            if let admins { policy.admins = Self.list(admins) }
            if let adminHosts { policy.adminHosts = Self.list(adminHosts) }
            if let enrollHosts { policy.enrollHosts = Self.list(enrollHosts) }
            if let adminSessionMinutes { policy.adminSessionMinutes = adminSessionMinutes }
            if let fido2UserVerification { policy.fido2UserVerification = fido2UserVerification == .on }
            if let aaguids = try aaguidList() { policy.fido2AAGUIDs = aaguids }
            if let sshKeyTypes { policy.sshKeyTypes = sshKeyTypes.rawValue }
            if let sshVerifyRequired { policy.sshVerifyRequired = sshVerifyRequired == .on }
            for entry in hostSSHKeys {
                let (name, rule) = try Self.parseSSHKeysEntry(entry)
                policy.hostSSHKeys[name] = rule?.description
            }
        }

        /// NAME=rule (nil rule: NAME=default, the entry removed).
        static func parseSSHKeysEntry(_ entry: String) throws -> (String, TwofoldCore.SSHKeyRule?) {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--host-ssh-keys takes NAME=RULE or NAME=default, not '\(entry)'.")
            }
            if parts[1] == "default" { return (parts[0], nil) }
            guard let rule = TwofoldCore.SSHKeyRule(text: parts[1]) else {
                throw ValidationError("--host-ssh-keys takes NAME=RULE, the rule \(TwofoldCore.SSHKeyRule.syntax), not '\(parts[1])'.")
            }
            return (parts[0], rule)
        }

        /// A comma-separated list; "" is the empty list.
        static func list(_ text: String) -> [String] {
            text.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        }

        static func parseService(_ entry: String) throws -> (String, String) {
            try parseRule(entry, option: "--service")
        }

        /// totp, hotp, recovery, email, sms, fido2.
        static let kindNames = FactorKind.allCases.map(\.rawValue)

        static func parseKinds(_ text: String, option: String) throws -> [String] {
            let kinds = text.split(separator: ",").map { String($0).trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
            guard !kinds.isEmpty, kinds.allSatisfy(kindNames.contains) else {
                throw ValidationError("\(option) takes some of \(kindNames.joined(separator: ", ")), comma-separated, not '\(text)'.")
            }
            return kinds
        }

        /// NAME=kinds (nil kinds: NAME=default, the entry removed).
        static func parseKindsEntry(_ entry: String, option: String) throws -> (String, [String]?) {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("\(option) takes NAME=kinds or NAME=default, not '\(entry)'.")
            }
            return (parts[0], parts[1] == "default" ? nil : try parseKinds(parts[1], option: option))
        }

        static func parseRule(_ entry: String, option: String) throws -> (String, String) {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, ["required", "optional", "default"].contains(parts[1]) else {
                throw ValidationError("\(option) takes NAME=required, NAME=optional or NAME=default, not '\(entry)'.")
            }
            return (parts[0], parts[1])
        }

        static func parseGraceDays(_ text: String) throws -> Int? {
            if text == "none" { return nil }
            guard let days = Int(text), days >= 0 else { throw ValidationError("--grace-days takes a number of days or none.") }
            return days
        }

        static func parseDeadline(_ text: String) throws -> Int64? {
            if text == "none" { return nil }
            guard let millis = TimeArgument.date(text) else {
                throw ValidationError("--grace-deadline takes a date (YYYY-MM-DD) or none, not '\(text)'.")
            }
            return millis
        }
    }
}
