import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct Unlock: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "unlock",
            abstract: "Clear a user's failures and lock."
        )

        @Argument(help: "The user.")
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws { try Twofoldctl.User.validateName(user) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.unlock(user: user))
            switch response {
            case .ok, .status: break
            default: throw unexpected(response)
            }
            let message = "Unlocked \(user): failures cleared."
            if options.json {
                Output.json(JSONDone(user: user, message: message))
            } else {
                Output.line(message)
            }
        }
    }
}
