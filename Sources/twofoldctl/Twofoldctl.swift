import ArgumentParser
import TwofoldProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `twofoldctl`: the control CLI of Twofold. It talks only to `twofoldd` over its Unix socket and
/// never opens the database. One subcommand per file, as in swift-argument-parser's `math` example.
/// Every command names itself (`commandName:`): a name argument-parser derives from the type costs
/// a dynamic cast per command at every start (a scan of the binary's conformances, about 40% of a
/// start), and `authorized-keys` starts on every SSH connection attempt.
@main
struct Twofoldctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofoldctl",
        abstract: "Manage Twofold, the TOTP second factor for Linux logins.",
        discussion: """
            twofoldctl talks to twofoldd over its Unix socket and never opens the database. User \
            commands act on your own account (an administrator may name another with --user); admin \
            commands need root or the daemon's admin group.

            Codes, and a security key's PIN, are never taken from the command line: they are read \
            from the terminal (without echo) or, when standard input is not a terminal, one per \
            line from standard input. \
            Every command that prints data accepts --json.

            The socket is --socket, else $TWOFOLD_SOCKET, else /run/twofold/twofold.sock. The \
            options --socket, --timeout and --json may come before the command as well as after it.

            EXIT STATUS
              0  success
              1  the daemon refused or failed the request (not found, conflict, invalid request,
                 unavailable), or another error (an unreadable file, an unexpected answer)
              2  usage error: unknown command, bad option or value
              3  twofoldd could not be reached (no socket, not running, no answer in time)
              4  permission denied (an admin command as a user, another user's account, or the
                 socket's permissions)
              5  invalid code
              6  locked after too many failures
              7  cancelled: no code given, or the recovery codes were not confirmed with 'yes'

            Shell completion: twofoldctl --generate-completion-script bash|zsh|fish.
            """,
        version: "twofoldctl \(TwofoldVersion.string)",
        groupedSubcommands: [
            CommandGroup(name: "User", subcommands: [
                Enroll.self, Status.self, Factors.self, Contact.self, Key.self, SSHKey.self, RecoveryCodes.self, Disable.self,
            ]),
            CommandGroup(name: "Admin", subcommands: [
                Users.self, User.self, Policy.self, Import.self, BulkImport.self, Audit.self, Host.self, Doctor.self, Rekey.self,
                Backup.self, Metrics.self, AdminSession.self, BreakGlass.self, AuthorizedKeys.self,
            ]),
        ]
    )

    /// Parses, runs, and exits with the documented codes: argument-parser's usage errors (EX_USAGE, 64)
    /// become 2; a `CLIFailure` has already been reported by the command and exits with its own code.
    static func main() {
        do {
            var command = try parseAsRoot(GlobalOptions.hoisted(Array(CommandLine.arguments.dropFirst()), root: Twofoldctl.self))
            try command.run()
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Glibc.exit(0)
            }
            if !message.isEmpty { Output.error(message) }
            Glibc.exit(code == .validationFailure ? ExitStatus.usage : code.rawValue)
        }
        Glibc.exit(0)
    }
}
