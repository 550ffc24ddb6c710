import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension SSHLoginTests {
    @Test("email end to end: sshd, the PAM module, twofoldd, twofold-deliver, send-email and msmtp into a real SMTP server; the code read from the mail logs in, once")
    func sshLoginWithEmailedCode() throws {
        try PAMBuild.require()
        let mail = try makeTemporaryDirectory("tfmail")
        defer { try? FileManager.default.removeItem(atPath: mail) }
        let smtp = try PortServer(["/usr/bin/python3", TestPaths.servers + "/smtp_server.py", mail + "/maildir"])
        try """
        from = Twofold <twofold@example.org>
        sendmail = /usr/bin/msmtp --host=127.0.0.1 --port=\(smtp.port) --from=twofold@example.org -t
        """.write(toFile: mail + "/send-email.conf", atomically: true, encoding: .utf8)
        let delivery = try DeliveryServiceProcess(commands: ["email": "\(TestPaths.sendEmail) --config \(mail)/send-email.conf"], timeoutMillis: 5_000)
        let daemon = try DeliveredCodeTests.daemon(delivery, kinds: ["email"])
        try DeliveredCodeTests.addContact(daemon, Self.testUser, "email", "ssh-user@example.com")
        let sshd = try PrivateSSHD(daemonSocket: daemon.socketPath, user: Self.testUser)
        defer { sshd.stop() }
        // The answer: the code in the newest message the SMTP server received (it is there before the prompt).
        let reader = mail + "/read-code"
        try writeScript(reader, """
            #!/bin/sh
            newest=$(ls -t \(mail)/maildir/new/* | head -n 1)
            sed -n 's/.*code is \\([0-9]*\\).*/\\1/p' "$newest" | head -n 1
            """)

        let good = try sshd.ssh(answer: "@run:" + reader, command: "echo twofold-ok")
        #expect(good.status == 0, "ssh: \(good.output)\nsshd: \(sshd.log)\ndaemon: \(daemon.log)\ndelivery: \(delivery.log)")
        #expect(good.output.contains("twofold-ok"))
        #expect(sshd.promptText.contains("A code was sent by email to s***@example.com"), "\(sshd.prompts)")
        let messages = try FileManager.default.contentsOfDirectory(atPath: mail + "/maildir/new")
        #expect(messages.count == 1)
        let message = try String(contentsOfFile: mail + "/maildir/new/" + messages[0], encoding: .utf8)
        #expect(message.contains("To: ssh-user@example.com") && message.contains("Subject: Your login code"), "\(message)")
        let code = try #require(DeliveryServiceProcess.code(in: message))

        // The same code again: a new one is sent, the old one refused.
        try writeScript(reader, "#!/bin/sh\necho \(code)\n")
        let replay = try sshd.ssh(answer: "@run:" + reader, command: "echo twofold-ok")
        #expect(replay.status != 0 && !replay.output.contains("twofold-ok"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: mail + "/maildir/new").count == 2)
        for log in [daemon.log, delivery.log, sshd.log] { #expect(!log.contains(code), "a code in a log") }
        withExtendedLifetime(smtp) {}
    }
}

@Suite("Text messages end to end")
struct SMSEndToEndTests {
    @Test("sms end to end: twofoldd, twofold-deliver, send-sms and curl to a real HTTP gateway with the token from the credentials; the code it got logs in")
    func smsThroughGateway() throws {
        let directory = try makeTemporaryDirectory("tfsms")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (credentials, token) = try SMSGateway.credentials(in: directory)
        let gateway = try SMSGateway(directory: directory, settings: """
            content_type = application/json
            body = {"to": "{to}", "text": "{message}"}
            token_header = Authorization: Bearer {token}
            token_file = \(credentials)/sms-token
            max_time = 5
            """)
        let record = gateway.record
        let delivery = try DeliveryServiceProcess(commands: ["sms": gateway.command], timeoutMillis: 5_000)
        let daemon = try DeliveredCodeTests.daemon(delivery, kinds: ["totp", "sms"])
        let account = try daemon.provision("smsuser")
        try DeliveredCodeTests.addContact(daemon, "smsuser", "sms", "+4915112345678")

        var asked = 0
        let outcome = try DeliveredCodeTests.login(daemon, "smsuser") { _ in
            asked += 1
            if asked == 1 { return "sms" }
            let lines = (try? String(contentsOfFile: record, encoding: .utf8))?.split(separator: "\n") ?? []
            guard let last = lines.last, let data = String(last).data(using: .utf8),
                  let request = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let body = request["body"] as? String else { return "" }
            return DeliveryServiceProcess.code(in: body) ?? ""
        }
        #expect(outcome?.verdict == .success, "\(String(describing: outcome)) \(delivery.log)")
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let request = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        let headers = request["headers"] as? [String: String] ?? [:]
        #expect(request["method"] as? String == "POST" && request["path"] as? String == "/v1/messages")
        #expect(headers["authorization"] == "Bearer \(token)" && headers["content-type"] == "application/json")
        let body = try #require(try JSONSerialization.jsonObject(with: Data((request["body"] as? String ?? "").utf8)) as? [String: String])
        #expect(body["to"] == "+4915112345678" && body["text"]?.contains("Your login code is") == true)
        #expect(!daemon.log.contains(token) && !delivery.log.contains(token))
        _ = account
        withExtendedLifetime(gateway) {}
    }
}
