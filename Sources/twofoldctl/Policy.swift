import ArgumentParser

extension Twofoldctl {
    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "policy",
            abstract: "Show or change who must use 2FA, and how (admins).",
            subcommands: [Show.self, Set.self, Explain.self]
        )
    }
}
