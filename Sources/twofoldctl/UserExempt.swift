import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Exempt: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "exempt",
            abstract: "Exempt a user from 2FA, whatever the policy says."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            try Twofoldctl.User.setRequirement(.exempt, user: user, options: options, session: session)
        }
    }
}
