import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Audit: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit",
            abstract: "Show the audit log: logins, enrollments and admin changes (admins).",
            discussion: """
                The newest records last. --since takes a date (2026-01-01, midnight local time), a date \
                and time (2026-01-01 12:00), or an age (90m, 1h, 7d, 2w).
                """
        )

        @Option(help: ArgumentHelp("Only this user's records.", valueName: "user"))
        var user: String?

        @Option(help: ArgumentHelp("Only records since this time.", valueName: "time"))
        var since: String?

        @Option(help: ArgumentHelp("Only the records of this host of the fleet.", valueName: "name"))
        var host: String?

        @Option(help: ArgumentHelp("Only this outcome (success, failure, locked, denied, pending, ...).", valueName: "outcome"))
        var outcome: String?

        @Option(help: ArgumentHelp("Only this action (verify, enroll, revoke, backup, restore, ...).", valueName: "action"))
        var action: String?

        @Option(help: ArgumentHelp("At most this many records (the newest).", valueName: "n"))
        var limit: Int = 100

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if let since, TimeArgument.millis(since) == nil {
                throw ValidationError("--since takes a date (YYYY-MM-DD), a date and time, or an age such as 1h or 7d, not '\(since)'.")
            }
            guard limit > 0 else { throw ValidationError("--limit must be positive.") }
            if let user { try Twofoldctl.User.validateName(user) }
            if let host { _ = try Twofoldctl.Host.normalizedName(host) }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let sinceMillis = since.flatMap { TimeArgument.millis($0) }
            let response = try session.send(.audit(user: user, sinceMillis: sinceMillis, outcome: outcome, limit: limit,
                                                   host: host.flatMap(HostIdentity.normalizedName), action: action))
            guard case .audit(let entries) = response else { throw unexpected(response) }
            if options.json {
                Output.json(entries)
                return
            }
            if entries.isEmpty {
                Output.line("No audit records.")
                return
            }
            Output.raw(Format.table(
                header: ["TIME", "ACTION", "USER", "OUTCOME", "HOST", "SERVICE", "RHOST", "TTY", "PEER UID", "REASON"],
                rows: entries.map { entry in
                    [
                        Format.time(millis: entry.timeMillis),
                        entry.action,
                        entry.user ?? "-",
                        entry.outcome,
                        entry.host ?? "-",
                        entry.service ?? "-",
                        entry.rhost ?? "-",
                        entry.tty ?? "-",
                        entry.peerUID.map(String.init) ?? "-",
                        entry.reason ?? "",
                    ]
                }
            ))
        }
    }
}
