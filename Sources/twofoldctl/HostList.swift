import ArgumentParser
import Foundation
import TwofoldProtocol

extension Twofoldctl.Host {
    struct List: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the registered hosts' certificates.",
            discussion: """
                One line per certificate, by host: the host, the start of the certificate's \
                fingerprint, when it expires, when it was added, and its state (in force, expired, \
                or revoked and when). With --json, an array of certificate documents with the full \
                fingerprints (times in milliseconds since the epoch).
                """
        )

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let certificates = try Twofoldctl.Host.certificates(try session.send(.hostList))
            if options.json {
                Output.json(certificates)
                return
            }
            guard !certificates.isEmpty else {
                Output.line("No hosts registered.")
                return
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            Output.raw(Format.table(
                header: ["HOST", "FINGERPRINT", "EXPIRES", "ADDED", "STATE"],
                rows: certificates.map { certificate in
                    [
                        certificate.name,
                        String(certificate.fingerprint.prefix(16)) + "...",
                        certificate.notAfterMillis.map { Format.time(millis: $0) } ?? "-",
                        Format.time(millis: certificate.addedMillis),
                        Self.state(certificate, now: now),
                    ]
                }
            ))
        }

        static func state(_ certificate: HostInfo, now: Int64) -> String {
            if let revoked = certificate.revokedMillis { return "revoked \(Format.time(millis: revoked))" }
            if let end = certificate.notAfterMillis, end <= now { return "expired" }
            return "in force"
        }
    }
}
