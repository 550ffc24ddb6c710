import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.User {
    struct FactorKinds: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "factor-kinds",
            abstract: "Set the factor kinds a user may use, whatever the host and service (or default: the policy's).",
            discussion: """
                The kinds are totp, hotp, recovery, email and sms (a code sent to a verified \
                contact), and fido2 (a security key), comma-separated. This is the first level of the chain the factor kinds \
                follow (user › host › service › default; see 'policy explain'). A factor of another \
                kind is left out of the user's logins, and a user with no factor of an allowed kind \
                is refused.

                Examples:
                  twofoldctl user factor-kinds alice totp
                  twofoldctl user factor-kinds alice default
                """
        )

        @Argument(help: "The user.")
        var user: String

        @Argument(help: ArgumentHelp("Comma-separated kinds (totp, hotp, recovery, email, sms, fido2), or default.", valueName: "kinds"))
        var kinds: String

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            try Twofoldctl.User.validateName(user)
            if kinds != "default" { _ = try Twofoldctl.Policy.Set.parseKinds(kinds, option: "kinds") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let list: [String]?
            do { list = kinds == "default" ? nil : try Twofoldctl.Policy.Set.parseKinds(kinds, option: "kinds") } catch {
                throw CLIFailure(ExitStatus.usage, "\(error)")
            }
            try Twofoldctl.User.setChainLevel(.setFactorKinds(user: user, kinds: list), user: user, options: options, session: session) {
                "Factor kinds for \(DisplayText.escaped($0.user)): \($0.factorKinds.joined(separator: ", ")) (\(DisplayText.escaped($0.factorKindsBecause)))"
            }
        }
    }
}
