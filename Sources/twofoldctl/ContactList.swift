import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Contact {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List contacts, masked: yours, a user's, or every user's (admins).",
            discussion: """
                One line per contact: the user, the channel (email, or sms for a phone number), the \
                contact masked as twofoldd sends it (a***@example.com, +49 *** *** 12; the full \
                address never leaves the daemon), whether it is verified or waiting for its code, \
                and when it was added and verified. With --json, an array of contact documents \
                (times in milliseconds since the epoch).
                """
        )

        @Option(help: ArgumentHelp("List this user's contacts instead of yours (admins only).", valueName: "user"))
        var user: String?

        @Flag(help: "List every user's contacts (admins only).")
        var all = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if all && user != nil { throw ValidationError("--all and --user do not go together.") }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.contactList(user: user, all: all))
            guard case .contacts(let contacts) = response else { throw unexpected(response) }
            if options.json {
                Output.json(contacts)
                return
            }
            guard !contacts.isEmpty else {
                Output.line(all ? "No contacts." : "No contacts for \(user ?? CallerAccount.name ?? "your account").")
                return
            }
            Output.raw(Format.table(
                header: ["USER", "CHANNEL", "CONTACT", "STATUS", "ADDED", "VERIFIED"],
                rows: contacts.map { contact in
                    [
                        contact.user,
                        contact.channel,
                        contact.masked,
                        contact.verified ? "verified" : "waiting",
                        Format.time(millis: contact.addedMillis),
                        contact.verifiedMillis.map { Format.time(millis: $0) } ?? "-",
                    ]
                }
            ))
        }
    }
}
