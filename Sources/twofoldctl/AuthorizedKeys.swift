import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    /// sshd's AuthorizedKeysCommand. It runs on every SSH connection attempt, so its path is short:
    /// one request on the socket, the lines to standard output, nothing else (no terminal, no
    /// policy, no account lookups of its own).
    struct AuthorizedKeys: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "authorized-keys",
            abstract: "Print a user's SSH keys for sshd (its AuthorizedKeysCommand).",
            discussion: """
                sshd runs it for every public key a client offers, as the user of \
                AuthorizedKeysCommandUser (twofoldd's authorized_keys_user, which may ask this and \
                nothing else; root may too). It prints the user's registered keys in \
                authorized_keys form, one per line, with the options the policy asks for \
                (verify-required with policy set --ssh-verify-required on; never \
                no-touch-required), and nothing else on standard output.

                An unknown user, a user without keys, or any error prints no line and exits 0: sshd \
                then accepts no key from this command. Errors go to standard error, one short line \
                (sshd shows it in its log at debug levels). When the servers are unreachable, a \
                relay answers from its cache of the keys it served (ssh_key_cache_seconds, one \
                hour by default, 0 off): a key revoked during an outage may keep working that long.

                In sshd_config (the README's "SSH hardware keys" has the whole block):
                  AuthorizedKeysCommand /usr/bin/twofoldctl authorized-keys %u
                  AuthorizedKeysCommandUser twofold-keys
                """
        )

        @Argument(help: ArgumentHelp("The user logging in (sshd's %u).", valueName: "user"))
        var user: String

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            if options.json { throw ValidationError("--json does not go with authorized-keys: it prints authorized_keys lines for sshd.") }
        }

        func run() throws {
            let session = DaemonSession(options)
            defer { session.disconnect() }
            do throws(CLIFailure) {
                let response = try session.send(.authorizedKeys(user: user))
                guard case .authorizedKeys(let lines, _) = response else { throw unexpected(response) }
                Output.raw(Self.text(lines))
            } catch where error.daemonCode == .notFound {
                // An unknown user: no key, and nothing to say on every probe for a name.
            } catch {
                Output.error("twofoldctl authorized-keys: " + String((error.message.split(whereSeparator: \.isNewline).first ?? "").prefix(200)))
            }
        }

        /// The lines as sshd reads them: one key a line; a line that could end early or hold a
        /// second key (a newline, a NUL) is dropped, whatever the daemon sent.
        static func text(_ lines: [String]) -> String {
            lines.filter { line in !line.isEmpty && !line.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\0" }) }
                .map { $0 + "\n" }.joined()
        }
    }
}
