import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Show: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one user's full state."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.showUser(user: user))
            guard case .status(let status) = response else { throw unexpected(response) }
            if options.json {
                Output.json(status)
            } else {
                Output.raw(Format.status(status))
            }
        }
    }
}
