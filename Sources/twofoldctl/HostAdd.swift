import ArgumentParser
import TwofoldProtocol

extension Twofoldctl.Host {
    struct Add: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Register a host's TLS client certificate, or its fingerprint.",
            discussion: """
                With --certificate, twofoldctl reads the PEM file and sends its first certificate \
                only (never a key the file may also hold); twofoldd checks that its subjectAltName \
                names the host as a DNS name and that it has not expired, and takes its SHA-256 \
                fingerprint and expiry from it. With --fingerprint, give the SHA-256 of the \
                certificate's DER as 64 hex digits or colon-separated pairs (what 'openssl x509 \
                -noout -fingerprint -sha256' prints). Adding a certificate the host already has \
                changes nothing.
                """
        )

        @Argument(help: ArgumentHelp("The host's name, as its certificate's subjectAltName holds it.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("The host's certificate (PEM).", valueName: "file"), completion: .file())
        var certificate: String?

        @Option(help: ArgumentHelp("The SHA-256 fingerprint of the host's certificate.", valueName: "hex"))
        var fingerprint: String?

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            _ = try Twofoldctl.Host.normalizedName(name)
            guard (certificate == nil) != (fingerprint == nil) else { throw ValidationError("Give exactly one of --certificate and --fingerprint.") }
            if let fingerprint, HostIdentity.normalizedFingerprint(fingerprint) == nil {
                throw ValidationError("--fingerprint takes the certificate's SHA-256: 64 hex digits, or 32 pairs separated by colons.")
            }
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let host = HostIdentity.normalizedName(name) ?? name
            var pem: String?
            if let certificate {
                let text = try Twofoldctl.Import.readFile(certificate, kind: "a certificate file")
                guard let first = Self.firstCertificate(in: text) else {
                    throw CLIFailure(ExitStatus.failure, "\(certificate) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
                }
                pem = first
            }
            let response = try session.send(.hostAdd(name: host, certificatePEM: pem, fingerprint: fingerprint, notAfterMillis: nil))
            let certificates = try Twofoldctl.Host.certificates(response)
            guard let added = certificates.first else { throw unexpected(response) }
            let message = "Registered certificate \(added.fingerprint) for host \(host)"
                + (added.notAfterMillis.map { " (expires \(Format.time(millis: $0)))" } ?? "") + "."
            if options.json {
                Output.json(Twofoldctl.Host.Done(host: host, message: message, certificates: certificates))
            } else {
                Output.line(message)
            }
        }

        /// The file's first certificate block: a file may hold a chain, or the key too, and only
        /// the host's certificate is sent.
        static func firstCertificate(in text: String) -> String? {
            guard let begin = text.range(of: "-----BEGIN CERTIFICATE-----"),
                  let end = text.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<text.endIndex) else { return nil }
            return String(text[begin.lowerBound..<end.upperBound]) + "\n"
        }
    }
}
