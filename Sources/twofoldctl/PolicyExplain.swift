import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Policy {
    struct Explain: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "explain",
            abstract: "Show which rule decides whether a user must use 2FA, and what their next login gives.",
            discussion: """
                The policy is a chain; the first level that has a rule for the login decides:

                  1. user     the admin's override for the user (twofoldctl user require|exempt)
                  2. host     the rule for the host the login is on (policy set --host NAME=...)
                  3. service  the rule for the PAM service (policy set --service NAME=...)
                  4. default  nobody, everyone, or the members of the required groups

                Without --host the host is the daemon's own. Without --service only the user, host \
                and default levels apply (the rule for a service without a rule of its own). The \
                factor kinds the login may use follow the same chain (host, service, default) and \
                are shown too.

                Examples:
                  twofoldctl policy explain alice --service sshd
                  twofoldctl policy explain bob --service sudo --host bastion
                """
        )

        @Argument(help: ArgumentHelp("The user.", valueName: "user"))
        var user: String

        @Option(help: ArgumentHelp("The PAM service of the login (sshd, login, sudo...).", valueName: "name"))
        var service: String?

        @Option(help: ArgumentHelp("The host of the login (default: the daemon's).", valueName: "name"))
        var host: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if user.isEmpty { throw ValidationError("Give a user name.") }
            if let service, service.isEmpty { throw ValidationError("--service must not be empty.") }
            if let host, host.isEmpty { throw ValidationError("--host must not be empty.") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.policyExplain(user: user, service: service, host: host))
            guard case .policyExplanation(let explanation) = response else { throw unexpected(response) }
            if options.json {
                Output.json(explanation)
            } else {
                Output.raw(Format.explanation(explanation))
            }
        }
    }
}
