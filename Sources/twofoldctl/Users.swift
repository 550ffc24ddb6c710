import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Users: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "users",
            abstract: "List every user twofoldd knows, as a table (admins).",
            discussion: """
                Columns: user, enrollment, the kinds of the active factors (method: totp, hotp, \
                email or sms for a verified contact, fido2 for a security key), how many factors \
                (apps, tokens), how many security keys, the verified contacts (masked), whether \
                2FA is required and why, last successful login (and the fleet host it was on, when \
                known), consecutive failures, lock, recovery codes left. 'twofoldctl factors --user \
                USER' lists one user's factors, 'twofoldctl contact list --user USER' their \
                contacts, 'twofoldctl key list --user USER' their keys. With --json, an array of \
                the users' status documents (with the factors' names, the contacts and the keys).
                """
        )

        /// Users asked per listUsers request (hidden: for tests of the paging).
        @Option(name: .customLong("page-size"), help: .hidden)
        var pageSize: Int = 500

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard pageSize > 0 else { throw ValidationError("--page-size must be positive.") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            var all: [UserStatus] = []
            var after: String?
            while true {
                let response = try session.send(.listUsers(after: after, limit: pageSize))
                guard case .users(let page) = response else { throw unexpected(response) }
                // Stop at an empty page, or if the daemon does not move forward.
                guard let last = page.last?.user, last != after else { break }
                all += page
                after = last
            }
            if options.json {
                Output.json(all)
                return
            }
            if all.isEmpty {
                Output.line("No users.")
                return
            }
            Output.raw(Format.table(
                header: ["USER", "ENROLLED", "METHOD", "FACTORS", "KEYS", "CONTACTS", "REQUIRED", "LAST SUCCESS", "FAILURES", "LOCKED", "RECOVERY CODES"],
                rows: all.map { status in
                    [
                        status.user,
                        status.enrollment,
                        status.method ?? "-",
                        status.enrollment == "active" ? status.factors.map { String($0.count) } ?? "-" : "-",
                        Format.keyCount(status),
                        Format.verifiedContacts(status).isEmpty ? "-" : Format.verifiedContacts(status).map(\.masked).joined(separator: ", "),
                        Format.required(status),
                        Format.lastSuccess(status),
                        String(status.failures),
                        Format.locked(status),
                        status.enrollment == "active" ? String(status.recoveryCodesLeft) : "-",
                    ]
                }
            ))
        }
    }
}
