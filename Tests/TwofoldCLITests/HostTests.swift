import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// The host registry through `twofoldctl host`, with certificates made by the real openssl.
@Suite struct HostTests {
    /// A self-signed certificate (and its key) made by openssl in `directory`, whose subjectAltName
    /// is `san`; its path and the SHA-256 fingerprint openssl prints (`AB:CD:...`).
    func certificate(_ directory: String, _ name: String, san: String) throws -> (path: String, fingerprint: String) {
        let path = directory + "/\(name).pem", key = directory + "/\(name).key"
        let made = try ChildProcess.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                         "-nodes", "-subj", "/CN=\(name)", "-addext", "subjectAltName=\(san)", "-days", "30",
                                         "-keyout", key, "-out", path])
        guard made.status == 0 else { throw HarnessError("openssl req: \(made.output)") }
        let printed = try ChildProcess.run(["/usr/bin/openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"])
        guard printed.status == 0, let fingerprint = printed.output.split(separator: "=").last else { throw HarnessError("openssl x509: \(printed.output)") }
        return (path, fingerprint.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// openssl's `AB:CD:...` as the daemon keeps it.
    func hex(_ fingerprint: String) -> String { fingerprint.replacingOccurrences(of: ":", with: "").lowercased() }

    func list(_ daemon: DaemonProcess) throws -> [HostInfo] {
        let result = try daemon.ctl(["host", "list", "--json"])
        #expect(result.status == 0, "\(result)")
        return try result.json([HostInfo].self)
    }

    @Test func addListAndRevokeWithRealCertificates() throws {
        let daemon = try DaemonProcess()
        let a = try certificate(daemon.directory, "host-a", san: "DNS:host-a,IP:192.0.2.1")
        let add = try daemon.ctl(["host", "add", "host-a", "--certificate", a.path])
        #expect(add.status == 0, "\(add)")
        #expect(add.stdout.contains("Registered certificate \(hex(a.fingerprint)) for host host-a (expires"), "\(add)")
        // The same again changes nothing; a file holding the key as well sends the certificate only.
        let both = daemon.directory + "/both.pem"
        try (String(contentsOfFile: daemon.directory + "/host-a.key", encoding: .utf8) + String(contentsOfFile: a.path, encoding: .utf8))
            .write(toFile: both, atomically: true, encoding: .utf8)
        #expect(try daemon.ctl(["host", "add", "HOST-A", "--certificate", both]).status == 0)
        let listed = try list(daemon)
        #expect(listed.map(\.fingerprint) == [hex(a.fingerprint)] && listed.map(\.name) == ["host-a"])
        let expiry = try #require(listed.first?.notAfterMillis)
        let days = Double(expiry) / 86_400_000 - Date().timeIntervalSince1970 / 86_400
        #expect(days > 29 && days <= 30.01, "\(days)")

        // A renewal by fingerprint, colon-separated in upper case as openssl prints it.
        let renewal = try certificate(daemon.directory, "host-a2", san: "DNS:host-a")
        let byPrint = try daemon.ctl(["host", "add", "host-a", "--fingerprint", renewal.fingerprint, "--json"])
        #expect(byPrint.status == 0, "\(byPrint)")
        #expect(byPrint.stdout.contains(hex(renewal.fingerprint)), "\(byPrint)")
        let table = try daemon.ctl(["host", "list"])
        #expect(table.status == 0, "\(table)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("HOST") == true && lines.count == 3, "\(table)")
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("host-a") && $0.hasSuffix("in force") }, "\(table)")
        #expect(table.stdout.contains(String(hex(a.fingerprint).prefix(16)) + "...") && !table.stdout.contains(hex(a.fingerprint)), "\(table)")

        // Another host's fingerprint is refused.
        let taken = try daemon.ctl(["host", "add", "host-b", "--fingerprint", a.fingerprint])
        #expect(taken.status == 1 && taken.stderr.contains("is registered to host 'host-a'"), "\(taken)")

        // Revoking asks first: without a terminal, only --yes does it.
        let unconfirmed = try daemon.ctl(["host", "revoke", "host-a"])
        #expect(unconfirmed.status == 7 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed)")
        #expect(try list(daemon).allSatisfy { $0.revokedMillis == nil })
        let revoke = try daemon.ctl(["host", "revoke", "host-a", "--yes"])
        #expect(revoke.status == 0 && revoke.stdout.contains("Revoked host host-a: none of its 2 certificate(s)"), "\(revoke)")
        #expect(try list(daemon).allSatisfy { $0.revokedMillis != nil })
        #expect(try daemon.ctl(["host", "list"]).stdout.split(separator: "\n").dropFirst().allSatisfy { $0.contains("revoked ") })
        let again = try daemon.ctl(["host", "revoke", "host-a", "--yes"])
        #expect(again.status == 1 && again.stderr.contains("no certificate in force"), "\(again)")
        let unknown = try daemon.ctl(["host", "revoke", "host-z", "--yes", "--json"])
        #expect(unknown.status == 1 && unknown.stdout.contains("\"code\" : \"notFound\""), "\(unknown)")
        // A revoked certificate never comes back.
        let back = try daemon.ctl(["host", "add", "host-a", "--certificate", a.path])
        #expect(back.status == 1 && back.stderr.contains("was revoked"), "\(back)")

        // Every change is in the audit, with the host.
        let audit = try daemon.ctl(["audit", "--host", "host-a", "--json"]).json([AuditEntry].self)
        #expect(audit.map(\.outcome) == ["success", "noop", "success", "success"], "\(audit)")
        #expect(audit.allSatisfy { $0.action == "host" && $0.host == "host-a" && $0.reason?.contains("host-a") == true }, "\(audit)")
        let human = try daemon.ctl(["audit", "--host", "host-a"])
        #expect(human.stdout.hasPrefix("TIME") && human.stdout.split(separator: "\n").first?.contains("HOST") == true, "\(human)")
        #expect(try daemon.ctl(["audit", "--host", "host-b", "--json"]).json([AuditEntry].self).isEmpty)
    }

    @Test func aCertificateWhoseSubjectAltNameLacksTheHostIsRefused() throws {
        let daemon = try DaemonProcess()
        let other = try certificate(daemon.directory, "web-1", san: "DNS:web-1,DNS:www.example.com,IP:192.0.2.9")
        let refused = try daemon.ctl(["host", "add", "web-2", "--certificate", other.path])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("the certificate is not for host 'web-2': its subjectAltName holds DNS:web-1, DNS:www.example.com, IP:192.0.2.9"),
                "\(refused)")
        // The common name alone does not count.
        let noSAN = try certificate(daemon.directory, "db-1", san: "email:ops@example.com")
        let cnOnly = try daemon.ctl(["host", "add", "db-1", "--certificate", noSAN.path])
        #expect(cnOnly.status == 1 && cnOnly.stderr.contains("holds email:ops@example.com"), "\(cnOnly)")
        // Not a certificate at all.
        try "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".write(toFile: daemon.directory + "/junk.pem", atomically: true, encoding: .utf8)
        let junk = try daemon.ctl(["host", "add", "db-1", "--certificate", daemon.directory + "/junk.pem"])
        #expect(junk.status == 1 && junk.stderr.contains("not a PEM-encoded X.509 certificate"), "\(junk)")
        let key = try daemon.ctl(["host", "add", "db-1", "--certificate", daemon.directory + "/db-1.key"])
        #expect(key.status == 1 && key.stderr.contains("holds no PEM certificate"), "\(key)")
        #expect(try list(daemon).isEmpty)
        #expect(try daemon.ctl(["host", "list"]).stdout == "No hosts registered.\n")
    }
}
