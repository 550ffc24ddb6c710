import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Revoke: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Remove a user's secret and recovery codes; they must enroll again.",
            discussion: "Use it when a phone is lost. If 2FA is required for the user, the policy's unenrolled setting applies at their next login."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.revoke(user: user))
            switch response {
            case .ok, .status: break
            default: throw unexpected(response)
            }
            let message = "Revoked 2FA for \(user): secret and recovery codes removed; they must enroll again."
            if options.json {
                Output.json(JSONDone(user: user, message: message))
            } else {
                Output.line(message)
            }
        }
    }
}
