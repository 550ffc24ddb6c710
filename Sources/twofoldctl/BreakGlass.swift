import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct BreakGlass: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "break-glass",
            abstract: "Emergency codes of this host, a relay of a fleet, for when no server can be reached (root).",
            discussion: """
                Each code is single use, 80 bits, and logs its account in on this host only, and only \
                while no server of the tier answers: an outage alone gets nobody in. The relay keeps \
                only their hashes (in its state directory) and reports every issue and use to the \
                tier's audit as soon as a server answers. Give them to the named people on paper; \
                clear and issue new ones after use.
                """,
            subcommands: [Issue.self, List.self, Clear.self]
        )

        /// Prints emergency-code entries: new codes (shown once), or what is left per account.
        static func show(_ entries: [BreakGlassEntry], options: GlobalOptions) {
            if options.json {
                Output.json(entries)
                return
            }
            if entries.isEmpty {
                Output.line("No emergency codes on this host.")
                return
            }
            if entries.contains(where: { $0.code != nil }) {
                Output.line("Emergency codes (each works once, only while no server can be reached; they are not shown again):")
                for entry in entries { Output.line("  \(entry.account)  \(entry.code ?? "")") }
            } else {
                Output.raw(Format.table(header: ["ACCOUNT", "UNUSED"], rows: entries.map { [$0.account, "\($0.unused)"] }))
            }
        }

        static func entries(_ response: ControlResponse) throws(CLIFailure) -> [BreakGlassEntry] {
            guard case .breakGlass(let entries) = response else { throw unexpected(response) }
            return entries
        }
    }
}
