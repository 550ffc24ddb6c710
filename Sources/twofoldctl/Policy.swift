import ArgumentParser

extension Twofoldctl {
    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change who must use 2FA, and how (admins).",
            subcommands: [Show.self, Set.self, Explain.self]
        )
    }
}
