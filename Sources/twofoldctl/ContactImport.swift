import ArgumentParser
import Foundation
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct Import: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
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

        /// The longest user name twofoldd takes (a longer one could not share a request with others).
        static let maxUserBytes = 256

        func validate() throws {
            guard (1...ControlLimits.maxImportsPerRequest).contains(batch) else {
                throw ValidationError("--batch must be from 1 to \(ControlLimits.maxImportsPerRequest).")
            }
        }

        /// One line of the list (trimmed, not blank, not a comment): the contact to send, or why the
        /// line cannot be used.
        static func parse(_ text: String) -> Result<ContactImport, LineImport.LineError> {
            let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
            let fields = text.split(maxSplits: 2, whereSeparator: isBlank).map(String.init)
            guard fields.count == 3 else {
                return .failure(LineImport.LineError(user: fields.first, message: "expected a user name, email or phone, and the address or number"))
            }
            guard fields[0].utf8.count <= maxUserBytes else {
                return .failure(LineImport.LineError(user: nil, message: "a user name has at most \(maxUserBytes) bytes"))
            }
            let channel: DeliveryChannel
            switch fields[1].lowercased() {
            case "email": channel = .email
            case "phone", "sms": channel = .sms
            default: return .failure(LineImport.LineError(user: fields[0], message: "'\(fields[1])' is not a channel: email or phone"))
            }
            do {
                let value = try ContactAddress.normalize(fields[2].trimmingSpaces(), channel: channel)
                return .success(ContactImport(user: fields[0], channel: channel.rawValue, value: value))
            } catch let invalid as ContactAddress.Invalid {
                return .failure(LineImport.LineError(user: fields[0], message: invalid.description))
            } catch {
                return .failure(LineImport.LineError(user: fields[0], message: "\(error)"))
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            // Each item's JSON as it goes in the request, to keep a batch under the bound.
            let encoder = JSONEncoder()
            let summary = try LineImport.run(session, file: file, batch: batch, parse: Self.parse,
                                             size: { (try? encoder.encode($0).count + 1) ?? LineImport.maxBatchJSONBytes },
                                             request: { .contactImport($0) })
            try LineImport.report(summary, json: options.json, user: DisplayText.escaped,
                                  imported: { "Imported \($0) verified contact\($0 == 1 ? "" : "s")" })
        }
    }
}
