import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Factors {
    struct Remove: DaemonCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove one factor by name (after a current code).",
            discussion: """
                Asks for a current code of any of your factors (or a recovery code); root, and an \
                admin removing another user's factor, are not asked. Removing the last factor turns \
                2FA off and removes the recovery codes too; twofoldd refuses that when 2FA is \
                required for the user (an admin may still do it). The recovery set is not removed \
                by name: 'twofoldctl recovery-codes' replaces it.
                """
        )

        @Argument(help: ArgumentHelp("The factor's name, as 'twofoldctl factors' lists it.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("Remove a factor of this user instead of yours (admins only).", valueName: "user"))
        var user: String?

        @Flag(help: "Remove a required user's last factor without asking (they are refused at their next login unless the policy enrolls at login or gives grace).")
        var yes = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if name == FactorNames.recovery {
                throw ValidationError("The recovery set is not removed by name: 'twofoldctl recovery-codes' replaces it.")
            }
            guard FactorNames.isValid(name) else {
                throw ValidationError("'\(name)' is not a factor name (\(FactorNames.rule)).")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            // Ask the list first: no code is typed for a factor that is not there (or an account
            // that is not the caller's).
            let listed = try session.send(.listFactors(user: user))
            guard case .factors(let factors) = listed else { throw unexpected(listed) }
            let names = factors.filter { $0.kind != FactorNames.recovery }.map(\.name)
            guard names.contains(name) else {
                let have = names.isEmpty ? "it has none" : "its factors: " + FactorNames.quoted(names)
                throw CLIFailure(ExitStatus.failure, "\(who) has no factor named '\(name)' (\(have))", daemonCode: .notFound)
            }
            let last = names.count == 1
            var code: String?
            if !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                session.disconnect()
                if showPrompts {
                    Output.error("Removing factor '\(name)' of \(who)"
                                 + (last ? ": it is the last, so 2FA turns off and the recovery codes are removed too." : "."))
                }
                code = try Terminal.readCode(prompt: "Current code (any factor, or a recovery code): ", showPrompt: showPrompts)
            }
            if last && code == nil && !yes { try confirmLastOfRequired(who: who, session: session) }
            let response = try session.send(.removeFactor(user: user, name: name, code: code))
            var left = names.filter { $0 != name }
            switch response {
            case .ok: break
            case .factors(let now): left = now.filter { $0.kind != FactorNames.recovery }.map(\.name)
            default: throw unexpected(response)
            }
            let message = left.isEmpty
                ? "Removed factor '\(name)' of \(who): it was the last, so 2FA is now off (recovery codes removed too)."
                : "Removed factor '\(name)' of \(who); \(left.count == 1 ? "1 factor" : "\(left.count) factors") left: \(FactorNames.quoted(left))."
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(message)
            }
        }

        /// An admin removing a required user's last factor leaves them required with nothing to
        /// log in with: confirmed by typing yes on a terminal, or --yes, like a policy change that
        /// locks users out.
        private func confirmLastOfRequired(who: String, session: DaemonSession) throws(CLIFailure) {
            let shown = try session.send(.status(user: user))
            guard case .status(let status) = shown, status.required else { return }
            let summary = "'\(name)' is the last factor of \(who), who must use 2FA (\(status.requiredBecause)): without it they are "
                + "refused at their next login unless the policy enrolls at login or gives grace"
            try Confirmation.require(summary, prompt: summary + ". Type yes to remove it: ", instead: "run again with --yes to remove it",
                                     cancelled: "not removed", json: options.json, session: session)
        }
    }
}
