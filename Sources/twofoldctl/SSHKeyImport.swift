import ArgumentParser
import Foundation
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.SSHKey {
    struct Import: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register many users' SSH keys from a list (admins).",
            discussion: """
                The list has one key per line: the user name, then the key as in a .pub file (type, \
                base64, optional comment), separated by white space. Blank lines and lines starting \
                with # are skipped. Each key is named from its type (sk-ed25519, sk-ecdsa, ...), made \
                unique per user. twofoldctl checks each line first; the good ones go to twofoldd in \
                batches (--batch per request), which checks them against the policy, stores each \
                batch in one transaction and audits every key. A line that cannot be used is \
                reported with its number and skipped; the others are imported. The exit status is \
                0 only if every line was imported.

                To move an existing authorized_keys file, prefix each key line with its user, e.g.
                  grep -E '^(sk-|ssh-|ecdsa-)' ~alice/.ssh/authorized_keys | sed 's/^/alice /' >> keys.txt
                (lines with options, such as from= or command=, are refused: the policy decides the
                options sshd gets).

                Example of a list:
                  # user  key
                  alice   sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t... alice@laptop
                """
        )

        @Argument(help: ArgumentHelp("The list file, or - for standard input.", valueName: "file"), completion: .file())
        var file: String

        @Option(help: ArgumentHelp("Keys per request (1 to 1000).", valueName: "n"))
        var batch = 500

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard (1...ControlLimits.maxImportsPerRequest).contains(batch) else {
                throw ValidationError("--batch must be from 1 to \(ControlLimits.maxImportsPerRequest).")
            }
        }

        /// One line of the list (trimmed, not blank, not a comment): the key to send, or why the
        /// line cannot be used.
        static func parse(_ text: String) -> Result<SSHKeyImport, LineImport.LineError> {
            let fields = text.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count == 2 else {
                return .failure(LineImport.LineError(user: fields.first, message: "expected a user name, then the key as in a .pub file"))
            }
            let (user, line) = (fields[0], fields[1].trimmingSpaces())
            guard user.utf8.count <= Twofoldctl.Contact.Import.maxUserBytes else {
                return .failure(LineImport.LineError(user: nil, message: "a user name has at most \(Twofoldctl.Contact.Import.maxUserBytes) bytes"))
            }
            do {
                _ = try SSHPublicKey(line: line)
                return .success(SSHKeyImport(user: user, name: nil, line: line))
            } catch {
                return .failure(LineImport.LineError(user: user, message: "\(error)"))
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            // Each item's JSON as it goes in the request, to keep a batch under the bound.
            let encoder = JSONEncoder()
            let summary = try LineImport.run(session, file: file, batch: batch, parse: Self.parse,
                                             size: { (try? encoder.encode($0).count + 1) ?? LineImport.maxBatchJSONBytes },
                                             request: { .sshKeyImport($0) })
            try LineImport.report(summary, json: options.json, user: DisplayText.escaped,
                                  imported: { "Imported \($0) SSH key\($0 == 1 ? "" : "s")" })
        }
    }
}
