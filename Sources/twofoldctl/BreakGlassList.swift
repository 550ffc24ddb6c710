import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.BreakGlass {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Unused emergency codes per account (never the codes).")

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            Twofoldctl.BreakGlass.show(try Twofoldctl.BreakGlass.entries(session.send(.breakGlassList)), options: options)
        }
    }
}
