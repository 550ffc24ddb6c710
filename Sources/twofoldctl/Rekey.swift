import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Rekey: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "rekey",
            abstract: "Re-seal every stored secret under twofoldd's sealing key, online (admins).",
            discussion: """
                The third step of a key rotation: once every daemon holds the new key and seals with \
                it (twofoldd.conf: key_file the new key, previous_key_files the old one), rekey has \
                twofoldd re-seal every stored secret that is not under its sealing key yet: factors' \
                secrets, pending enrollments, recovery codes and the recovery pepper. It works in \
                small transactions, so logins go on meanwhile, and writes a value back only if nobody \
                changed it since it was read. It may be stopped at any time (or the daemon may stop) \
                and run again: it goes over everything again and what is already under the key is \
                only counted. It prints its progress, then a summary; when every secret is under the \
                sealing key, the previous keys can be removed from every daemon's configuration. \
                The start and the end are audited. Each step is a request of its own, of about a \
                second; the last one counts every stored secret, so rekey waits at least 300 s for \
                an answer, whatever --timeout says.

                --check changes nothing: it counts the stored secrets by the key they are under. \
                With --json, rekey prints the totals and the counts at the end, --check the counts.

                EXIT STATUS (besides those of every command)
                  0  every secret is under the sealing key (with --check: the counts were printed)
                  1  some secrets are still under other keys: they do not open with the daemon's
                     keys (its log names them), or a daemon still sealing with an old key rewrote them
                """
        )

        /// The last step counts every stored secret (a read of the whole database): a large one
        /// takes longer than --timeout's default.
        static let minimumTimeout: Double = 300

        @Flag(help: "Only count the stored secrets by the key they are under; change nothing.")
        var check = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {}

        /// The totals of a pass, and where the secrets are at its end.
        struct Summary: Encodable {
            var complete: Bool
            var sealingKey: String
            var previousKeys: [String]
            var resealed = 0
            var alreadyCurrent = 0
            var changed = 0
            var unreadable = 0
            var counts: [SealedCount]
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            if check {
                let report = try step(session, cursor: nil)
                try show(counts: report)
                return
            }
            var report = try step(session, cursor: nil)
            var summary = Summary(complete: false, sealingKey: report.sealingKey, previousKeys: report.previousKeys, counts: [])
            if !options.json { Output.line("Re-sealing under key \(report.sealingKey)" + Self.previous(report.previousKeys) + ".") }
            while true {
                summary.resealed += report.resealed
                summary.alreadyCurrent += report.alreadyCurrent
                summary.changed += report.changed
                summary.unreadable += report.unreadable
                guard let cursor = report.cursor else { break }
                if !options.json {
                    Output.line("re-sealed \(summary.resealed), \(summary.alreadyCurrent) already under key \(report.sealingKey)")
                    Output.flush()
                }
                report = try step(session, cursor: cursor)
            }
            summary.counts = report.counts ?? []
            summary.complete = report.notUnderSealingKey == 0
            try finish(summary)
        }

        private func step(_ session: DaemonSession, cursor: String?) throws(CLIFailure) -> RekeyReport {
            // A connection per step: a long pass must not meet the daemon's connection_timeout.
            defer { session.disconnect() }
            let response = try session.send(.rekey(check: check, cursor: cursor))
            guard case .rekey(let report) = response else { throw unexpected(response) }
            return report
        }

        private func finish(_ summary: Summary) throws(CLIFailure) {
            if options.json {
                Output.json(summary)
            } else {
                let key = summary.sealingKey
                var text = "Re-sealed \(summary.resealed) secret\(summary.resealed == 1 ? "" : "s"), \(summary.alreadyCurrent) "
                    + "\(summary.alreadyCurrent == 1 ? "was" : "were") already under key \(key); "
                if summary.complete {
                    text += "every secret is now under key \(key)" + (summary.previousKeys.isEmpty ? "." : "; previous keys can be removed.")
                } else {
                    text += "\(Self.left(summary.counts, key)) still under other keys (\(Self.others(summary.counts, key)))."
                }
                Output.line(text)
                if summary.changed > 0 {
                    Output.line("\(summary.changed) changed while being re-sealed and were left to whoever changed them.")
                }
                if summary.unreadable > 0 {
                    Output.line("\(summary.unreadable) did not open with twofoldd's keys and were left as they are (its log names them).")
                }
            }
            if !summary.complete {
                if !options.json { Output.error("twofoldctl: not every secret is under key \(summary.sealingKey): keep the previous keys; run rekey again once the cause is fixed") }
                throw CLIFailure(ExitStatus.failure, "not every secret is under the sealing key", reported: true)
            }
        }

        private func show(counts report: RekeyReport) throws(CLIFailure) {
            let counts = report.counts ?? []
            if options.json {
                Output.json(Summary(complete: report.notUnderSealingKey == 0, sealingKey: report.sealingKey,
                                    previousKeys: report.previousKeys, counts: counts))
                return
            }
            Output.line("Sealing key \(report.sealingKey)" + Self.previous(report.previousKeys) + ".")
            Output.raw(Format.table(header: ["KEY", "FORMAT", "SECRETS"], rows: counts.map { count in
                [Self.name(count.keyID, report), String(count.formatVersion), String(count.count)]
            }))
            let left = Self.left(counts, report.sealingKey)
            Output.line(left == 0
                ? "Every secret is under the sealing key" + (report.previousKeys.isEmpty ? "." : ": the previous keys can be removed.")
                : "\(left) secret\(left == 1 ? " is" : "s are") not under the sealing key: run 'twofoldctl rekey'.")
        }

        private static func previous(_ keys: [String]) -> String {
            keys.isEmpty ? " (no previous keys)" : " (previous key\(keys.count == 1 ? "" : "s"): \(keys.joined(separator: ", ")))"
        }

        private static func name(_ id: String?, _ report: RekeyReport) -> String {
            guard let id else { return "(none: the first key)" }
            if id == report.sealingKey { return id + " (sealing)" }
            return id + (report.previousKeys.contains(id) ? " (previous)" : " (not held)")
        }

        private static func left(_ counts: [SealedCount], _ key: String) -> Int {
            counts.filter { $0.keyID != key }.reduce(0) { $0 + $1.count }
        }

        private static func others(_ counts: [SealedCount], _ key: String) -> String {
            counts.filter { $0.keyID != key }.map { "\($0.keyID.map { "key \($0)" } ?? "format \($0.formatVersion)"): \($0.count)" }
                .joined(separator: ", ")
        }
    }
}
