import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.BreakGlass {
    struct Clear: DaemonCommand {
        static let configuration = CommandConfiguration(commandName: "clear", abstract: "Remove the unused emergency codes of an account, or of every account.")

        @Option(help: ArgumentHelp("Only this account's codes.", valueName: "user"))
        var account: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            Twofoldctl.BreakGlass.show(try Twofoldctl.BreakGlass.entries(session.send(.breakGlassClear(account: account))), options: options)
        }
    }
}
