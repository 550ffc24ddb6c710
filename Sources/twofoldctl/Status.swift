import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Status: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show whether 2FA is on and with which factors, contacts and security keys, required, locked, and how many recovery codes are left."
        )

        @Option(help: ArgumentHelp("Show this user instead of yourself (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.status(user: user))
            guard case .status(let status) = response else { throw unexpected(response) }
            if options.json {
                Output.json(status)
            } else {
                Output.raw(Format.status(status))
            }
        }
    }
}
