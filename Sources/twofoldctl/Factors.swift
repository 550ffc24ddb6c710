import ArgumentParser

extension Twofoldctl {
    struct Factors: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "factors",
            abstract: "List your second factors, or remove one by name.",
            discussion: """
                A user may have several factors (an app on a phone and one on a tablet, a hardware \
                token): a login accepts a code of any of them. 'twofoldctl factors [--user U]' lists \
                them (it is 'factors list'); 'twofoldctl enroll --name NAME' adds one. Recovery codes \
                are one set per user, whatever the factors.
                """,
            subcommands: [List.self, Remove.self],
            defaultSubcommand: List.self
        )
    }
}
