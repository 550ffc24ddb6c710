import Foundation
import Testing
import TwofoldCore
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real OpenSSH login through pam_twofold.so and twofoldd: a private sshd on 127.0.0.1 with its
/// own config, host key and PAM service, `AuthenticationMethods publickey,keyboard-interactive`,
/// and `ssh` answering the keyboard-interactive prompt through SSH_ASKPASS.
@Suite("sshd login", .serialized)
struct SSHLoginTests {
    static let testUser = "twofold-ssh"

    @Test("the right code logs in and runs a command; wrong, empty and replayed codes are refused (SQLite, PostgreSQL, and through a fleet's relay)",
          arguments: ["sqlite", "postgresql", "relay"])
    func sshLogin(store: String) throws {
        try PAMBuild.require()
        let key = try SharedKey()
        // The cluster object owns its scratch database: it lives as long as the test.
        let cluster = store == "postgresql" ? try PostgresCluster() : nil
        // Through a relay: the module talks to this host's relay, the server decides.
        let fleet = store == "relay" ? try Fleet(servers: 1) : nil
        let daemon = try fleet.map { $0.servers[0] }
            ?? cluster.map { try DaemonProcess.onPostgres($0, database: try $0.createScratchDatabase(), keyFile: key.path) }
            ?? DaemonProcess()
        let account = try daemon.provision(Self.testUser)
        let socket = try fleet.map { try $0.relay("ssh-host").socketPath } ?? daemon.socketPath
        let sshd = try PrivateSSHD(daemonSocket: socket, user: Self.testUser)
        defer { sshd.stop() }

        let wrong = try sshd.ssh(answer: account.wrongCode(), command: "echo twofold-ok")
        #expect(wrong.status != 0)
        #expect(!wrong.output.contains("twofold-ok"))

        let empty = try sshd.ssh(answer: "", command: "echo twofold-ok")
        #expect(empty.status != 0)
        #expect(!empty.output.contains("twofold-ok"))

        let code = account.code()
        let good = try sshd.ssh(answer: code, command: "echo twofold-ok; id -un")
        #expect(good.status == 0, "ssh output: \(good.output)\nsshd log: \(sshd.log)")
        #expect(good.output.contains("twofold-ok"))
        #expect(good.output.contains(Self.testUser))
        #expect(sshd.prompts.contains { $0.hasSuffix("Verification code: ") }, "prompts seen by ssh: \(sshd.prompts)")

        let replay = try sshd.ssh(answer: code, command: "echo twofold-ok")
        #expect(replay.status != 0, "a replayed code must be refused")
        #expect(!replay.output.contains("twofold-ok"))

        // The daemon recorded each attempt.
        let audit = try daemon.control(.audit(user: Self.testUser, sinceMillis: nil, outcome: nil, limit: 100))
        guard case .audit(let entries) = audit else { Issue.record("audit: \(audit)"); return }
        #expect(entries.filter { $0.outcome == "success" && $0.service?.hasPrefix("twofold-sshd") == true }.count == 1)
        #expect(entries.filter { $0.outcome == "failure" }.count == 3)
        #expect(entries.allSatisfy { $0.rhost == nil || $0.rhost == "127.0.0.1" })
        if fleet != nil { #expect(entries.filter { $0.action == "verify" }.allSatisfy { $0.host == "ssh-host" }, "\(entries.map(\.host))") }
        withExtendedLifetime((cluster, fleet)) {}
    }
}

extension SSHLoginTests {
    @Test("enroll at login over sshd with the key the session showed, then a recovery code at the sshd prompt")
    func enrollAtLoginAndRecovery() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess(extraConfig: "require = everyone\nunenrolled = enroll")
        let sshd = try PrivateSSHD(daemonSocket: daemon.socketPath, user: Self.testUser)
        defer { sshd.stop() }
        _ = try? daemon.control(.revoke(user: Self.testUser))

        let enrolled = try sshd.ssh(answer: "@totp-from-prompt", command: "echo twofold-ok")
        #expect(enrolled.status == 0, "ssh: \(enrolled.output)\nsshd: \(sshd.log)")
        #expect(enrolled.output.contains("twofold-ok"))
        let shown = sshd.promptText
        #expect(shown.contains("Scan this QR code"), "\(shown)")
        #expect(shown.contains("\u{2580}") || shown.contains("\u{2584}") || shown.contains("\u{2588}"), "the QR code is drawn with half blocks")
        #expect(shown.contains("Code from the app: "))
        guard case .status(let status) = try daemon.control(.status(user: Self.testUser)) else { Issue.record("status"); return }
        #expect(status.enrollment == "active")
        #expect(status.recoveryCodesLeft == 10)

        // The recovery codes the session showed, with the prompt to acknowledge them.
        #expect(shown.contains("Press Enter when you have saved them: "))
        let codes = shown.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.range(of: #"^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{2}$"#, options: .regularExpression) != nil }
        guard codes.count == 10 else {
            Issue.record("the enrollment session did not show 10 recovery codes: \(shown)")
            return
        }
        let recovery = codes[0]
        let viaRecovery = try sshd.ssh(answer: recovery, command: "echo twofold-ok")
        #expect(viaRecovery.status == 0, "\(viaRecovery.output)")
        #expect(viaRecovery.output.contains("twofold-ok"))
        let again = try sshd.ssh(answer: recovery, command: "echo twofold-ok")
        #expect(again.status != 0, "a recovery code works once")
        guard case .status(let after) = try daemon.control(.status(user: Self.testUser)) else { Issue.record("status"); return }
        #expect(after.recoveryCodesLeft == 9)
    }
}
