import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Default: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "default",
            abstract: "Remove a user's override: the policy decides again."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            try Twofoldctl.User.setRequirement(.policy, user: user, options: options, session: session)
        }
    }
}
