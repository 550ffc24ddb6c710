import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Require: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "require",
            abstract: "Require 2FA for a user, whatever the policy says."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            try Twofoldctl.User.setRequirement(.required, user: user, options: options, session: session)
        }
    }
}
