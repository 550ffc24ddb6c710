import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Host: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "host",
            abstract: "Register, list or revoke the hosts of a fleet (admins).",
            discussion: """
                In fleet mode the hosts reach the twofoldd servers over mutual TLS, each known by \
                its client certificate. A host may have several certificates (a renewal is added \
                beside the old one); revoking a host revokes all of them, for good: a revoked \
                certificate cannot be registered again. Host names are DNS names, compared without \
                case.
                """,
            subcommands: [Add.self, List.self, Revoke.self]
        )
    }
}

extension Twofoldctl.Host {
    /// The name as the daemon keeps it (lower case), or a usage error.
    static func normalizedName(_ name: String) throws -> String {
        guard let host = HostIdentity.normalizedName(name) else {
            throw ValidationError("'\(name)' is not a host name (a DNS name: letters, digits, '-' and '.', at most 253 characters).")
        }
        return host
    }

    /// `{"ok": true, "host": ..., "message": ..., "certificates": [...]}` for `host add` and `host revoke` with --json.
    struct Done: Encodable {
        var ok = true
        var host: String
        var message: String
        var certificates: [HostInfo]
    }

    /// The host's certificates from a `hosts` answer.
    static func certificates(_ response: ControlResponse) throws(CLIFailure) -> [HostInfo] {
        guard case .hosts(let certificates) = response else { throw unexpected(response) }
        return certificates
    }
}
