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
                The list has one user per line: the user name, optionally a factor name, and an \
                otpauth:// URI, separated by white space (a factor name has no ':', a URI always has \
                one, so the two never blur). A line without a factor name gets --name's, else \
                "imported"; an existing factor of that name is replaced, any other stays. Blank lines \
                and lines starting with # are skipped. The users are sent in batches \
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

        @Option(help: ArgumentHelp("The factor name for lines that give none (default: imported).", valueName: "name"))
        var name: String?

        @OptionGroup var options: GlobalOptions

        /// A request stays well under the 64 KiB frame bound.
        static let maxBatchJSONBytes = 48_000

        func validate() throws {
            guard (1...500).contains(batch) else { throw ValidationError("--batch must be from 1 to 500.") }
            if let name, !FactorNames.isValid(name) {
                throw ValidationError("'\(name)' is not a factor name (\(FactorNames.rule)).")
            }
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
                // USER [NAME] URI: the second field is a factor name when it has no ':' (a URI always has one).
                let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
                var fields = text.split(maxSplits: 1, whereSeparator: isBlank).map(String.init)
                var factor = name
                if fields.count == 2, !fields[1].prefix(while: { !isBlank($0) }).contains(":") {
                    let rest = fields[1].split(maxSplits: 1, whereSeparator: isBlank).map(String.init)
                    factor = rest[0]
                    fields = rest.count == 2 ? [fields[0], rest[1]] : [fields[0]]
                }
                guard fields.count == 2 else {
                    summary.refused.append(Refused(line: number, user: fields.first,
                                                   error: "expected a user name, a factor name if any, and an otpauth:// URI"))
                    continue
                }
                if let factor, !FactorNames.isValid(factor) {
                    summary.refused.append(Refused(line: number, user: fields[0], error: "'\(factor)' is not a factor name (\(FactorNames.rule))"))
                    continue
                }
                let user = fields[0]
                let uri = fields[1].trimmingSpaces()
                let size = uri.utf8.count + user.utf8.count + (factor?.utf8.count ?? 0) + 80
                if bytes + size > Self.maxBatchJSONBytes { try flush() }
                items.append(EnrollmentImport(user: user, source: .uri(uri), name: factor))
                itemLines.append(number)
                bytes += size
                if items.count >= batch { try flush() }
            }
            try flush()
            summary.refused.sort { $0.line < $1.line }
            summary.ok = summary.refused.isEmpty
            return summary
        }
    }
}
