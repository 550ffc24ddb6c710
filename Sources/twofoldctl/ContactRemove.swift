import ArgumentParser
import TwofoldCore
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct Remove: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove an email address or a phone number (after a current code).",
            discussion: """
                --email or --phone names the channel. With an address (or number) only that contact \
                is removed; without one, every contact of the channel: the verified one and one \
                waiting for its code. If you have a factor, a current code of one is asked as for \
                'contact add' (a code from 'twofoldctl contact send-code' does too); root, and an \
                admin removing another user's contact, are not asked.

                Removing the last factor turns 2FA off; twofoldd refuses that when 2FA is required \
                for the user. An admin may still do it, after typing yes on a terminal or with --yes.

                Examples:
                  twofoldctl contact remove --phone
                  twofoldctl contact remove --email alice@example.com
                """
        )

        @Flag(help: "Remove an email address.")
        var email = false

        @Flag(help: "Remove a phone number.")
        var phone = false

        @Argument(help: ArgumentHelp("Only this address or number (default: every contact of the channel).", valueName: "address"))
        var address: String?

        @Option(help: ArgumentHelp("Remove a contact of this user instead of yours (admins only).", valueName: "user"))
        var user: String?

        @Flag(help: "Remove a required user's last factor without asking (they are refused at their next login unless the policy enrolls at login or gives grace).")
        var yes = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            _ = try target()
        }

        /// The channel, and the address as twofoldd stores it when one is given.
        func target() throws -> (DeliveryChannel, String?) {
            let channel = try Twofoldctl.Contact.channel(email: email, phone: phone)
            return (channel, try address.map { try Twofoldctl.Contact.normalized($0, channel: channel) })
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let showPrompts = !options.json || Terminal.inputIsTerminal
            let channel: DeliveryChannel, value: String?
            do { (channel, value) = try target() } catch { throw CLIFailure(ExitStatus.usage, "\(error)") }
            let who = user ?? CallerAccount.name ?? "your account"
            // Ask the contacts first: no code is typed for a contact that is not there. The list
            // is masked, so an address is matched by its mask (twofoldd decides on the address).
            let contacts = try Twofoldctl.Contact.contacts(of: user, session: session)
            let mask = value.map { ContactAddress.masked($0, channel: channel) }
            let removed = contacts.filter { $0.channel == channel.rawValue && (mask == nil || $0.masked == mask) }
            let noun = channel == .email ? "email" : "phone"
            guard !removed.isEmpty else {
                throw CLIFailure(ExitStatus.failure, "\(who) has no \(noun) contact\(mask.map { " \($0)" } ?? "")", daemonCode: .notFound)
            }
            let status = try Twofoldctl.Contact.status(of: user, session: session)
            let othersLeft = !(status.factors ?? []).isEmpty
                || contacts.contains { contact in contact.verified && !removed.contains(contact) }
            let last = status.enrollment == "active" && removed.contains(where: \.verified) && !othersLeft
            let what = removed.count == 1 ? "the \(Twofoldctl.Contact.describe(removed[0]))" : "\(removed.count) \(noun) contacts"
            if status.enrollment == "active" && showPrompts && !CallerAccount.isRoot && !CallerAccount.isOther(user) {
                Output.error("Removing \(what) of \(who)" + (last ? ": it is the last factor, so 2FA turns off." : "."))
            }
            let code = try Twofoldctl.Contact.currentCode(status, user: user, showPrompts: showPrompts, session: session)
            if last && code == nil && !yes && status.required { try confirmLastOfRequired(status, what: what, who: who, session: session) }
            let response = try session.send(.contactRemove(user: user, channel: channel.rawValue, value: value, code: code))
            guard case .ok = response else { throw unexpected(response) }
            let message = "Removed \(what) of \(who)" + (last ? ": it was the last factor, so 2FA is now off." : ".")
            if options.json {
                Output.json(JSONDone(user: user ?? CallerAccount.name, message: message))
            } else {
                Output.line(message)
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
