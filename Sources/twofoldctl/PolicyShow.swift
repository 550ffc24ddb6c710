import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Policy {
    struct Show: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show the policy in force."
        )

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.policyShow)
            guard case .policy(let policy) = response else { throw unexpected(response) }
            if options.json {
                Output.json(policy)
            } else {
                Output.raw(Format.policy(policy))
            }
        }
    }
}
