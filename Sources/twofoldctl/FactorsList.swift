import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Factors {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the factors and the recovery set (the default of 'factors').",
            discussion: """
                Columns: name, kind (totp, hotp; recovery for the recovery set), detail (algorithm, \
                digits, period; codes left for the recovery set), when it was added, when it last \
                logged in. With --json, an array of factor documents (times in milliseconds since \
                the epoch; the recovery set has codesLeft).
                """
        )

        @Option(help: ArgumentHelp("List this user's factors instead of yours (admins only).", valueName: "user"))
        var user: String?

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.listFactors(user: user))
            guard case .factors(let factors) = response else { throw unexpected(response) }
            if options.json {
                Output.json(factors)
                return
            }
            let who = user ?? CallerAccount.name ?? "your account"
            let otp = factors.filter { $0.kind != FactorNames.recovery }
            guard !otp.isEmpty else {
                Output.line("No factors: 2FA is not enrolled for \(who).")
                return
            }
            Output.raw(Format.table(
                header: ["NAME", "KIND", "DETAIL", "ADDED", "LAST USED"],
                rows: factors.map { factor in
                    [
                        factor.name,
                        factor.kind,
                        factor.detail,
                        factor.addedAtMillis.map { Format.time(millis: $0) } ?? "-",
                        factor.kind == FactorNames.recovery ? "-" : factor.lastUsedMillis.map { Format.time(millis: $0) } ?? "never",
                    ]
                }
            ))
            if !factors.contains(where: { $0.kind == FactorNames.recovery }) {
                Output.line("No recovery codes left: 'twofoldctl recovery-codes' makes a new set.")
            }
        }
    }
}
