import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct User: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "user",
            abstract: "Show or change one user (admins).",
            subcommands: [Show.self, Require.self, Exempt.self, Default.self, FactorKinds.self, SSHKeyRule.self, Revoke.self, Unlock.self]
        )
    }
}

extension Twofoldctl.User {
    /// `user require|exempt|default`: set the override, then print the user's state.
    static func setRequirement(_ requirement: RequirementSetting, user: String, options: GlobalOptions,
                               session: DaemonSession) throws(CLIFailure) {
        let response = try session.send(.setRequirement(user: user, requirement: requirement))
        let status: UserStatus
        switch response {
        case .status(let returned):
            status = returned
        case .ok:
            let shown = try session.send(.showUser(user: user))
            guard case .status(let returned) = shown else { throw unexpected(shown) }
            status = returned
        default:
            throw unexpected(response)
        }
        if options.json {
            Output.json(status)
        } else {
            Output.raw(Format.status(status))
        }
    }

    /// `user factor-kinds|ssh-key-rule`: set one level of the user's chains, then print what the
    /// chain gives now (`policy explain` for the daemon's own host): `--json` the whole explanation,
    /// else the line `line` makes of it.
    static func setChainLevel(_ request: ControlRequest, user: String, options: GlobalOptions, session: DaemonSession,
                              line: (PolicyExplanation) -> String) throws(CLIFailure) {
        let response = try session.send(request)
        guard case .ok = response else { throw unexpected(response) }
        let shown = try session.send(.policyExplain(user: user, service: nil, host: nil))
        guard case .policyExplanation(let explanation) = shown else { throw unexpected(shown) }
        if options.json {
            Output.json(explanation)
        } else {
            Output.line(line(explanation))
        }
    }

    /// User names as the daemon accepts them are checked there; this only catches the obvious.
    static func validateName(_ user: String) throws {
        guard !user.isEmpty, !user.hasPrefix("-"), !user.contains(where: { $0.isWhitespace || $0 == "/" || $0 == ":" }) else {
            throw ValidationError("'\(user)' is not a user name.")
        }
    }
}
