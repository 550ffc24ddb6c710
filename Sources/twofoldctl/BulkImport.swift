import ArgumentParser
import TwofoldProtocol

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

        func validate() throws {
            guard (1...500).contains(batch) else { throw ValidationError("--batch must be from 1 to 500.") }
            if let name, !FactorNames.isValid(name) {
                throw ValidationError("'\(name)' is not a factor name (\(FactorNames.rule)).")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let summary = try LineImport.run(session, file: file, batch: batch,
                                             parse: { Self.parse($0, name: name) }, size: Self.size,
                                             request: { .importEnrollments($0) })
            try LineImport.report(summary, json: options.json, user: { $0 },
                                  imported: { "Imported 2FA for \($0) user\($0 == 1 ? "" : "s")" })
        }

        /// An item's share of a request: its URI and names, and room for the JSON around them.
        static func size(_ item: EnrollmentImport) -> Int {
            guard case .uri(let uri) = item.source else { return LineImport.maxBatchJSONBytes }
            return uri.utf8.count + item.user.utf8.count + (item.name?.utf8.count ?? 0) + 80
        }

        /// One line of the list (trimmed, not blank, not a comment): USER [NAME] URI. The second field
        /// is a factor name when it has no ':' (a URI always has one); without one, `name` is the factor's.
        static func parse(_ text: String, name: String?) -> Result<EnrollmentImport, LineImport.LineError> {
            let (user, rest) = LineImport.firstField(text[...])
            var factor = name, uri = rest
            if let rest {
                let (second, afterSecond) = LineImport.firstField(rest)
                if !second.utf8.contains(UInt8(ascii: ":")) {
                    factor = String(second)
                    uri = afterSecond
                }
            }
            guard let uri else {
                return .failure(LineImport.LineError(user: String(user), message: "expected a user name, a factor name if any, and an otpauth:// URI"))
            }
            if let factor, !FactorNames.isValid(factor) {
                return .failure(LineImport.LineError(user: String(user), message: "'\(factor)' is not a factor name (\(FactorNames.rule))"))
            }
            return .success(EnrollmentImport(user: String(user), source: .uri(uri.trimmingSpaces()), name: factor))
        }
    }
}
