import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Host {
    struct Revoke: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke every certificate of a host: it can no longer reach the servers.",
            discussion: """
                For a host that is lost, compromised or retired. A revoked certificate can never be \
                registered again: the host needs a new certificate. Asks for confirmation on a \
                terminal; elsewhere, and with --json, --yes is needed.
                """
        )

        @Argument(help: ArgumentHelp("The host's name.", valueName: "name"))
        var name: String

        @Flag(help: "Revoke without asking.")
        var yes = false

        @OptionGroup var options: GlobalOptions

        func validate() throws { _ = try Twofoldctl.Host.normalizedName(name) }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let host = HostIdentity.normalizedName(name) ?? name
            if !yes {
                let summary = "revoking host \(host) refuses its certificates from now on, for good (a revoked certificate cannot be registered again)"
                try Confirmation.require(summary, prompt: summary + ". Type yes to revoke it: ", instead: "run again with --yes to revoke it",
                                         cancelled: "not revoked", json: options.json, session: session)
            }
            let certificates = try Twofoldctl.Host.certificates(try session.send(.hostRevoke(name: host)))
            let message = "Revoked host \(host): none of its \(certificates.count) certificate(s) is accepted any more."
            if options.json {
                Output.json(Twofoldctl.Host.Done(host: host, message: message, certificates: certificates))
            } else {
                Output.line(message)
            }
        }
    }
}
