import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Factors {
    struct Remove: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove one factor by name (after a current code).",
            discussion: """
                Asks for a current code of any of your factors (or a recovery code, or one from \
                'twofoldctl contact send-code'); root, and an admin removing another user's factor, \
                are not asked. Removing the last app or token turns 2FA off and removes the recovery \
                codes too, unless you have a verified contact (see 'twofoldctl contact'): 2FA and the \
                recovery codes then stay. twofoldd refuses to turn 2FA off when it is required for \
                the user (an admin may still do it). The recovery set is not removed by name: \
                'twofoldctl recovery-codes' replaces it.
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
            let asked = !CallerAccount.isRoot && !CallerAccount.isOther(user)
            // The user's status, when it tells what happens or what the prompt says: after the
            // last app or token a verified contact keeps 2FA on, and the recovery codes with it.
            var status: UserStatus?
            if last || (asked && showPrompts) {
                let shown = try session.send(.status(user: user))
                guard case .status(let current) = shown else { throw unexpected(shown) }
                status = current
            }
            let contacts = status.map(Format.verifiedContacts) ?? []
            let kept = "the verified contact\(contacts.count == 1 ? "" : "s") (\(contacts.map(Format.contact).joined(separator: ", ")))"
            let turnsOff = last && contacts.isEmpty
            var code: String?
            if asked {
                session.disconnect()
                if showPrompts {
                    let what: String
                    if turnsOff {
                        what = ": it is the last, so 2FA turns off and the recovery codes are removed too."
                    } else if last {
                        what = ": it is the last app or token, but 2FA stays on with \(kept) and the recovery codes stay valid."
                    } else {
                        what = "."
                    }
                    Output.error("Removing factor '\(name)' of \(who)" + what)
                }
                let prompt = Twofoldctl.Contact.currentCodePrompt("Current code (any factor, or a recovery code): ", status: status)
                code = try Terminal.readCode(prompt: prompt, showPrompt: showPrompts)
            }
            if turnsOff && code == nil && !yes, let status { try confirmLastOfRequired(who: who, status: status, session: session) }
            let response = try session.send(.removeFactor(user: user, name: name, code: code))
            var left = names.filter { $0 != name }
            switch response {
            case .ok: break
            case .factors(let now): left = now.filter { $0.kind != FactorNames.recovery }.map(\.name)
            default: throw unexpected(response)
            }
            let message: String
            if !left.isEmpty {
                message = "Removed factor '\(name)' of \(who); \(left.count == 1 ? "1 factor" : "\(left.count) factors") left: \(FactorNames.quoted(left))."
            } else if contacts.isEmpty {
                message = "Removed factor '\(name)' of \(who): it was the last, so 2FA is now off (recovery codes removed too)."
            } else {
                message = "Removed factor '\(name)' of \(who): no app or token is left, but 2FA stays on with \(kept) and the recovery codes stay valid."
            }
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(message)
            }
        }

        /// An admin removing a required user's last factor leaves them required with nothing to
        /// log in with: confirmed by typing yes on a terminal, or --yes, like a policy change that
        /// locks users out.
        private func confirmLastOfRequired(who: String, status: UserStatus, session: DaemonSession) throws(CLIFailure) {
            guard status.required else { return }
            let summary = "'\(name)' is the last factor of \(who), who must use 2FA (\(status.requiredBecause)): without it they are "
                + "refused at their next login unless the policy enrolls at login or gives grace"
            try Confirmation.require(summary, prompt: summary + ". Type yes to remove it: ", instead: "run again with --yes to remove it",
                                     cancelled: "not removed", json: options.json, session: session)
        }
    }
}
