import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.BreakGlass {
    struct Issue: DaemonCommand {
        static let configuration = CommandConfiguration(commandName: "issue", abstract: "Issue new emergency codes for accounts of this host.")

        @Option(name: .customLong("account"), help: ArgumentHelp("An account the codes log in (repeatable), e.g. root.", valueName: "user"))
        var accounts: [String] = []

        @Option(help: ArgumentHelp("Codes per account (1 to 10).", valueName: "n"))
        var count = 3

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard !accounts.isEmpty else { throw ValidationError("Name at least one --account.") }
            guard (1...10).contains(count) else { throw ValidationError("--count must be 1 to 10.") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            Twofoldctl.BreakGlass.show(try Twofoldctl.BreakGlass.entries(session.send(.breakGlassIssue(accounts: accounts, count: count))),
                                       options: options)
        }
    }
}
