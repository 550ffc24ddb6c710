import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Key {
    struct Remove: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove a security key (after a current code), or all of a user's keys (admins).",
            discussion: """
                NAME is the key's name as 'twofoldctl key list' shows it. If you have a factor, a \
                current code of one is asked as for 'key add'; root, and an admin removing another \
                user's key, are not asked. The key stops working at once on every host. The \
                credential stays on the key itself (it takes no space that matters): a key \
                registered again gets a new one.

                --all --user USER revokes every key of USER (admins only), e.g. for lost keys.

                Removing the last factor turns 2FA off; twofoldd refuses that when 2FA is required \
                for the user. An admin may still do it, after typing yes on a terminal or with --yes.

                Examples:
                  twofoldctl key remove blue-key
                  twofoldctl key remove backup --user alice
                  twofoldctl key remove --all --user alice
                """
        )

        @Argument(help: ArgumentHelp("The key to remove.", valueName: "name"))
        var name: String?

        @Flag(help: "Remove every key of the user given with --user (admins only).")
        var all = false

        @Option(help: ArgumentHelp("Remove a key of this user instead of yours (admins only).", valueName: "user"))
        var user: String?

        @Flag(help: "Remove a required user's last factor without asking (they are refused at their next login unless the policy enrolls at login or gives grace).")
        var yes = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard (name == nil) == all else { throw ValidationError("Give the name of a key, or --all with --user.") }
            if all && user == nil { throw ValidationError("--all needs --user: it revokes every key of one user (admins only).") }
            try Twofoldctl.Key.validateName(name)
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let who = user ?? CallerAccount.name ?? "your account"
            // Ask the keys first: no code is typed for a key that is not there.
            let keys = try Twofoldctl.Key.keys(of: user, session: session)
            let removed = keys.filter { all || $0.name == name }
            guard !removed.isEmpty else {
                let what = name.map { "no security key '\(DisplayText.escaped($0))'" } ?? "no security keys"
                throw CLIFailure(ExitStatus.failure, "\(DisplayText.escaped(who)) has \(what)", daemonCode: .notFound)
            }
            let status = try Twofoldctl.Contact.status(of: user, session: session)
            let othersLeft = !(status.factors ?? []).isEmpty || Twofoldctl.Contact.hasVerifiedContact(status) || removed.count < keys.count
            let last = status.enrollment == "active" && !othersLeft
            let what = all ? "all \(removed.count) security key\(removed.count == 1 ? "" : "s")" : "security key '\(removed[0].name)'"
            if status.enrollment == "active" && showPrompts && !CallerAccount.isRoot && !CallerAccount.isOther(user) && !all {
                Output.error("Removing \(what) of \(who)" + (last ? ": it is the last factor, so 2FA turns off." : "."))
            }
            // --all is an admin's revocation: twofoldd asks no code of an admin.
            let code = all ? nil : try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            if last && code == nil && !yes && status.required { try confirmLastOfRequired(status, what: what, who: who, session: session) }
            let response = try session.send(.keyRemove(user: user, name: all ? nil : name, code: code))
            switch response {
            case .ok, .keys: break
            default: throw unexpected(response)
            }
            let message = "Removed \(what) of \(who)" + (last ? ": it was the last factor, so 2FA is now off." : ".")
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(DisplayText.escaped(message))
            }
        }

        /// An admin removing a required user's last factor: confirmed by typing yes, or --yes.
        private func confirmLastOfRequired(_ status: UserStatus, what: String, who: String, session: DaemonSession) throws(CLIFailure) {
            let summary = "\(what) is the last factor of \(who), who must use 2FA (\(status.requiredBecause)): without it they are "
                + "refused at their next login unless the policy enrolls at login or gives grace"
            try Confirmation.require(summary, prompt: summary + ". Type yes to remove it: ", instead: "run again with --yes to remove it",
                                     cancelled: "not removed", json: options.json, session: session)
        }
    }
}
