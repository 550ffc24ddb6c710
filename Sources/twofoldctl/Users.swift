import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Users: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every user twofoldd knows, as a table (admins).",
            discussion: """
                Columns: user, enrollment, method, whether 2FA is required and why, last successful \
                login, consecutive failures, lock, recovery codes left. With --json, an array of the \
                users' status documents.
                """
        )

        @OptionGroup var options: GlobalOptions

        /// Users asked per listUsers request.
        static let pageSize = 500

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            var all: [UserStatus] = []
            var after: String?
            while true {
                let response = try session.send(.listUsers(after: after, limit: Self.pageSize))
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
                header: ["USER", "ENROLLED", "METHOD", "REQUIRED", "LAST SUCCESS", "FAILURES", "LOCKED", "RECOVERY CODES"],
                rows: all.map { status in
                    [
                        status.user,
                        status.enrollment,
                        status.method ?? "-",
                        Format.required(status),
                        status.lastSuccessMillis.map { Format.time(millis: $0) } ?? "never",
                        String(status.failures),
                        Format.locked(status),
                        status.enrollment == "active" ? String(status.recoveryCodesLeft) : "-",
                    ]
                }
            ))
        }
    }
}
