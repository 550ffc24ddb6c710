import ArgumentParser
import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Twofoldctl {
    struct BulkImport: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "bulk-import",
            abstract: "Import many users' existing secrets from a list (admins).",
            discussion: """
                The list has one user per line: the user name, white space, and an otpauth:// URI. \
                Blank lines and lines starting with # are skipped. The users are sent in batches \
                (--batch per request); twofoldd stores each batch in one transaction and audits every \
                user. A line it cannot use is reported with its number and skipped; the others are \
                imported. The exit status is 0 only if every line was imported.

                The list holds secrets: keep it private (mode 0600), or give - and pipe it in, and \
                delete it afterwards.
                """
        )

        @Argument(help: ArgumentHelp("The list file, or - for standard input.", valueName: "file"), completion: .file())
        var file: String

        @Option(help: ArgumentHelp("Users per request (1 to 500).", valueName: "n"))
        var batch = 200

        @OptionGroup var options: GlobalOptions

        /// A request stays well under the 64 KiB frame bound.
        static let maxBatchJSONBytes = 48_000

        func validate() throws {
            guard (1...500).contains(batch) else { throw ValidationError("--batch must be from 1 to 500.") }
        }

        struct Refused: Encodable {
            var line: Int
            var user: String?
            var error: String
        }

        struct Summary: Encodable {
            var ok: Bool
            var imported: Int
            var refused: [Refused]
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let summary = try importAll(session)
            if options.json {
                Output.json(summary)
            } else {
                for r in summary.refused {
                    Output.error("line \(r.line)\(r.user.map { " (\($0))" } ?? ""): \(r.error)")
                }
                Output.line("Imported 2FA for \(summary.imported) user\(summary.imported == 1 ? "" : "s")"
                            + (summary.refused.isEmpty ? "." : "; \(summary.refused.count) line\(summary.refused.count == 1 ? "" : "s") refused."))
            }
            if !summary.ok {
                throw CLIFailure(ExitStatus.failure, "\(summary.refused.count) lines not imported", reported: true)
            }
        }

        private func importAll(_ session: DaemonSession) throws(CLIFailure) -> Summary {
            // Standard input through a stream of its own (a duplicate of fd 0).
            guard let stream = file == "-" ? fdopen(dup(0), "r") : fopen(file, "r") else {
                throw CLIFailure(ExitStatus.failure, "cannot read \(file): \(String(cString: strerror(errno)))")
            }
            defer { fclose(stream) }

            var summary = Summary(ok: true, imported: 0, refused: [])
            var items: [EnrollmentImport] = []
            var itemLines: [Int] = []
            var bytes = 0
            var number = 0
            var linePointer: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(linePointer) }

            func flush() throws(CLIFailure) {
                guard !items.isEmpty else { return }
                let response = try session.send(.importEnrollments(items))
                guard case .importedMany(let outcomes) = response, outcomes.count == items.count else {
                    if case .error(let code, let message) = response {
                        throw CLIFailure(ExitStatus.forDaemonError(code), message, daemonCode: code)
                    }
                    throw unexpected(response)
                }
                for (outcome, line) in zip(outcomes, itemLines) {
                    if let error = outcome.error {
                        summary.refused.append(Refused(line: line, user: outcome.user, error: error))
                    } else {
                        summary.imported += 1
                    }
                }
                items.removeAll(keepingCapacity: true)
                itemLines.removeAll(keepingCapacity: true)
                bytes = 0
            }

            while getline(&linePointer, &capacity, stream) >= 0 {
                number += 1
                guard let linePointer else { break }
                let text = String(cString: linePointer).trimmingSpaces()
                if text.isEmpty || text.hasPrefix("#") { continue }
                let fields = text.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count == 2 else {
                    summary.refused.append(Refused(line: number, user: fields.first.map(String.init),
                                                   error: "expected a user name and an otpauth:// URI"))
                    continue
                }
                let user = String(fields[0])
                let uri = String(fields[1]).trimmingSpaces()
                if bytes + uri.utf8.count + user.utf8.count + 64 > Self.maxBatchJSONBytes { try flush() }
                items.append(EnrollmentImport(user: user, source: .uri(uri)))
                itemLines.append(number)
                bytes += uri.utf8.count + user.utf8.count + 64
                if items.count >= batch { try flush() }
            }
            try flush()
            summary.refused.sort { $0.line < $1.line }
            summary.ok = summary.refused.isEmpty
            return summary
        }
    }
}
