import ArgumentParser
import Foundation
import TwofoldCore
import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Twofoldctl.Contact {
    struct Import: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add many users' contacts as verified, from a list (admins).",
            discussion: """
                The list has one contact per line: the user name, email or phone, and the address or \
                number, separated by white space (a phone number may hold spaces; it is in \
                international form, + and the country code). Blank lines and lines starting with # \
                are skipped. The contacts are verified at once, without a code: import only \
                addresses the users' records vouch for (a directory, an HR system). twofoldctl \
                checks each line first; the good ones go to twofoldd in batches (--batch per \
                request), which stores each batch in one transaction and audits every contact. A \
                line that cannot be used is reported with its number and skipped; the others are \
                imported. The exit status is 0 only if every line was imported.

                Example of a list:
                  # user  channel  address
                  alice   email    alice@example.com
                  bob     phone    +49 151 1234 5678
                """
        )

        @Argument(help: ArgumentHelp("The list file, or - for standard input.", valueName: "file"), completion: .file())
        var file: String

        @Option(help: ArgumentHelp("Contacts per request (1 to 1000).", valueName: "n"))
        var batch = 500

        @OptionGroup var options: GlobalOptions

        /// A request stays well under the 64 KiB frame bound.
        static let maxBatchJSONBytes = 48_000
        /// The longest user name twofoldd takes (a longer one could not share a request with others).
        static let maxUserBytes = 256

        func validate() throws {
            guard (1...ControlLimits.maxImportsPerRequest).contains(batch) else {
                throw ValidationError("--batch must be from 1 to \(ControlLimits.maxImportsPerRequest).")
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

        /// One line of the list: the contact to send, or why the line cannot be used (nil for a
        /// blank line or a comment).
        static func parse(_ line: String) -> Result<ContactImport, LineError>? {
            let text = line.trimmingSpaces()
            if text.isEmpty || text.hasPrefix("#") { return nil }
            let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
            let fields = text.split(maxSplits: 2, whereSeparator: isBlank).map(String.init)
            guard fields.count == 3 else {
                return .failure(LineError(user: fields.first, message: "expected a user name, email or phone, and the address or number"))
            }
            guard fields[0].utf8.count <= maxUserBytes else {
                return .failure(LineError(user: nil, message: "a user name has at most \(maxUserBytes) bytes"))
            }
            let channel: DeliveryChannel
            switch fields[1].lowercased() {
            case "email": channel = .email
            case "phone", "sms": channel = .sms
            default: return .failure(LineError(user: fields[0], message: "'\(fields[1])' is not a channel: email or phone"))
            }
            do {
                let value = try ContactAddress.normalize(fields[2].trimmingSpaces(), channel: channel)
                return .success(ContactImport(user: fields[0], channel: channel.rawValue, value: value))
            } catch let invalid as ContactAddress.Invalid {
                return .failure(LineError(user: fields[0], message: invalid.description))
            } catch {
                return .failure(LineError(user: fields[0], message: "\(error)"))
            }
        }

        struct LineError: Error {
            var user: String?
            var message: String
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let summary = try importAll(session)
            if options.json {
                Output.json(summary)
            } else {
                for r in summary.refused {
                    Output.error("line \(r.line)\(r.user.map { " (\(DisplayText.escaped($0)))" } ?? ""): \(r.error)")
                }
                Output.line("Imported \(summary.imported) verified contact\(summary.imported == 1 ? "" : "s")"
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
            var items: [ContactImport] = []
            var itemLines: [Int] = []
            var bytes = 0
            var number = 0
            var linePointer: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(linePointer) }
            // Each item's JSON as it goes in the request, to keep a batch under the bound.
            let encoder = JSONEncoder()

            func flush() throws(CLIFailure) {
                guard !items.isEmpty else { return }
                let response = try session.send(.contactImport(items))
                guard case .importedMany(let outcomes) = response, outcomes.count == items.count else { throw unexpected(response) }
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
                switch Self.parse(String(cString: linePointer)) {
                case nil:
                    continue
                case .failure(let error)?:
                    summary.refused.append(Refused(line: number, user: error.user, error: error.message))
                case .success(let item)?:
                    let size = (try? encoder.encode(item).count + 1) ?? Self.maxBatchJSONBytes
                    if bytes + size > Self.maxBatchJSONBytes { try flush() }
                    items.append(item)
                    itemLines.append(number)
                    bytes += size
                    if items.count >= batch { try flush() }
                }
            }
            try flush()
            summary.refused.sort { $0.line < $1.line }
            summary.ok = summary.refused.isEmpty
            return summary
        }
    }
}
