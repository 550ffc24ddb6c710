import ArgumentParser
import Foundation
import TwofoldProtocol

extension Twofoldctl {
    struct Import: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Give a user an active enrollment from an existing secret (admins).",
            discussion: """
                Takes over a secret a user already has in their app: an otpauth:// URI, a \
                ~/.google_authenticator file (its scratch codes become recovery codes), or a line of \
                pam_oath's users.oath. twofoldctl only reads the file; twofoldd parses and checks it.

                The secret becomes the user's factor --name (default: imported), beside any other \
                factors; one of the same name is replaced. Scratch codes of a google-authenticator \
                file replace the user's recovery codes; an import without any keeps them.

                Command lines are visible to other users (ps, /proc): prefer --uri - and give the URI \
                on standard input.
                """
        )

        @Argument(help: "The user to enroll.")
        var user: String

        @Option(help: ArgumentHelp("An otpauth:// URI, or - to read it from standard input (the command line is visible to other users).", valueName: "uri"))
        var uri: String?

        @Option(name: .customLong("google-authenticator"), help: ArgumentHelp("A ~/.google_authenticator file.", valueName: "file"), completion: .file())
        var googleAuthenticator: String?

        @Option(name: .customLong("users-oath"), help: ArgumentHelp("pam_oath's users.oath file; the line for the user is sent.", valueName: "file"), completion: .file())
        var usersOath: String?

        @Option(name: .customLong("line-for"), help: ArgumentHelp("With --users-oath: take the line of this name instead of the user's (it is sent as the user's).", valueName: "name"))
        var lineFor: String?

        @Option(help: ArgumentHelp("The factor's name (default: imported); an existing factor of that name is replaced.", valueName: "name"))
        var name: String?

        @OptionGroup var options: GlobalOptions

        /// Files larger than this are not an authenticator file.
        static let maxFileBytes = 64 << 10

        func validate() throws {
            try Twofoldctl.User.validateName(user)
            let sources = [uri, googleAuthenticator, usersOath].compactMap { $0 }
            guard sources.count == 1 else {
                throw ValidationError("Give exactly one of --uri, --google-authenticator and --users-oath.")
            }
            if lineFor != nil && usersOath == nil { throw ValidationError("--line-for goes with --users-oath.") }
            if let name, !FactorNames.isValid(name) {
                throw ValidationError("'\(name)' is not a factor name (\(FactorNames.rule)).")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let source: ImportSource
            if let uri {
                source = .uri(try uri == "-" ? readURI() : uri)
            } else if let googleAuthenticator {
                source = .googleAuthenticator(try Self.readFile(googleAuthenticator))
            } else if let usersOath {
                var line = try Self.line(for: lineFor ?? user, in: try Self.readFile(usersOath), file: usersOath)
                if let lineFor, lineFor != user { line = Self.renamed(line, to: user) }
                source = .usersOath(line)
            } else {
                throw CLIFailure(ExitStatus.usage, "nothing to import")
            }
            let response = try session.send(.importEnrollment(user: user, source: source, name: name))
            let recovery: Int
            switch response {
            case .imported(let count): recovery = count
            case .ok: recovery = 0
            default: throw unexpected(response)
            }
            let factor = name ?? FactorNames.imported
            if options.json {
                Output.json(Imported(user: user, factor: factor, recoveryCodes: recovery))
            } else {
                Output.line("Imported 2FA for \(user) as factor '\(factor)': active"
                            + (recovery > 0 ? ", with \(recovery) recovery codes." : "."))
            }
        }

        private func readURI() throws(CLIFailure) -> String {
            let line = Terminal.readLine(prompt: "otpauth URI: ", hidden: true, showPrompt: Terminal.inputIsTerminal)
            let text = line?.trimmingSpaces() ?? ""
            guard !text.isEmpty else { throw CLIFailure(ExitStatus.cancelled, "no URI given on standard input") }
            return text
        }

        /// A small text file (at most `maxFileBytes`); `kind` names it in errors.
        static func readFile(_ path: String, kind: String = "an authenticator file") throws(CLIFailure) -> String {
            let data: Data
            do {
                let url = URL(fileURLWithPath: path)
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                guard size <= maxFileBytes else { throw CLIFailure(ExitStatus.failure, "\(path) is too large (\(size) bytes) for \(kind)") }
                data = try Data(contentsOf: url)
            } catch let error as CLIFailure {
                throw error
            } catch {
                let reason = (error as NSError).localizedDescription
                throw CLIFailure(ExitStatus.failure, "cannot read \(path): \(reason)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw CLIFailure(ExitStatus.failure, "\(path) is not UTF-8 text")
            }
            return text
        }

        /// The users.oath line whose second field is `name` (comments and blank lines skipped).
        static func line(for name: String, in text: String, file: String) throws(CLIFailure) -> String {
            var found: [String] = []
            for raw in text.split(whereSeparator: \.isNewline) {
                let line = String(raw).trimmingSpaces()
                if line.isEmpty || line.hasPrefix("#") { continue }
                let fields = line.split(whereSeparator: \.isWhitespace)
                if fields.count >= 2 && fields[1] == name { found.append(line) }
            }
            guard !found.isEmpty else { throw CLIFailure(ExitStatus.failure, "\(file) has no line for '\(name)'") }
            guard found.count == 1 else { throw CLIFailure(ExitStatus.failure, "\(file) has \(found.count) lines for '\(name)'; keep one") }
            return found[0]
        }

        /// The line with its user field (the second) set to `user`: --line-for maps another name's line to the user.
        static func renamed(_ line: String, to user: String) -> String {
            var fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            fields[1] = user
            return fields.joined(separator: " ")
        }

        struct Imported: Encodable {
            var ok = true
            var user: String
            var factor: String
            var recoveryCodes: Int
        }
    }
}
