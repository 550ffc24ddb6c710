import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The real `twofold-deliver` binary on a temporary socket, with real commands: email through
/// send-email and msmtp into a real SMTP server (aiosmtpd), text messages through send-sms and curl
/// into a real HTTP server; commands that fail, hang, flood their output or do not exist; bad frames;
/// peers of another uid. After each test the service's log must not hold the request's code.
@Suite("twofold-deliver, the real binary")
struct DeliveryServiceTests {
    // MARK: email and sms end to end

    @Test("email: send-email and msmtp hand the message to a real SMTP server: To, Subject, the code in the body")
    func emailEndToEnd() throws {
        let mail = try makeTemporaryDirectory("dlv-mail")
        defer { try? FileManager.default.removeItem(atPath: mail) }
        let smtp = try PortServer(["/usr/bin/python3", TestPaths.servers + "/smtp_server.py", mail + "/maildir"])
        let sendConfig = mail + "/send-email.conf"
        try """
        from = Twofold <twofold@example.org>
        sendmail = /usr/bin/msmtp --host=127.0.0.1 --port=\(smtp.port) --from=twofold@example.org -t
        """.write(toFile: sendConfig, atomically: true, encoding: .utf8)
        let service = try DeliveryServiceProcess.bare("email_command = \(TestPaths.sendEmail) --config \(sendConfig)")
        var request = makeRequest(destination: "bob.smith@example.com")
        request.subject = "Código de acceso"

        let response = try service.request(request)
        #expect(response == DeliveryResponse(outcome: "sent"), "\(service.log)")

        // msmtp has finished the SMTP dialog when send-email exits: the message is in the Maildir.
        let new = mail + "/maildir/new"
        let files = try FileManager.default.contentsOfDirectory(atPath: new)
        #expect(files.count == 1, "\(files)")
        let text = try String(contentsOfFile: new + "/" + (files.first ?? ""), encoding: .utf8)
        let (head, body) = try #require(text.range(of: "\n\n").map { (String(text[..<$0.lowerBound]), String(text[$0.upperBound...])) })
        let headers = head.split(separator: "\n").map(String.init)
        #expect(headers.contains("To: bob.smith@example.com"), "\(head)")
        #expect(headers.contains("From: Twofold <twofold@example.org>"), "\(head)")
        #expect(headers.contains("Subject: =?UTF-8?B?\(Data("Código de acceso".utf8).base64EncodedString())?="), "\(head)")
        #expect(headers.contains("Auto-Submitted: auto-generated"), "\(head)")
        #expect(headers.contains("Content-Type: text/plain; charset=UTF-8"), "\(head)")
        #expect(headers.contains { $0.hasPrefix("Date: ") } && headers.contains { $0.hasPrefix("Message-ID: <") && $0.hasSuffix("@example.org>") }, "\(head)")
        // The SMTP envelope: the recipient from To, the sender msmtp was given.
        #expect(headers.contains("X-RcptTo: bob.smith@example.com") && headers.contains("X-MailFrom: twofold@example.org"), "\(head)")
        #expect(body.contains(request.code) && body == request.message, "\(body)")

        #expect(service.stop() == 0)
        let log = service.log
        #expect(log.contains("outcome=sent") && log.contains("destination=b***@example.com") && !log.contains("bob.smith"), "\(log)")
        #expect(!log.contains(request.code), "\(log)")
    }

    @Test("send-email refuses a destination that would inject a header, before sendmail runs")
    func emailHeaderInjection() throws {
        let directory = try makeTemporaryDirectory("dlv-inj")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sendmail = directory + "/sendmail"
        try writeScript(sendmail, "#!/bin/sh\ntouch \(directory)/ran\ncat >/dev/null\n")
        try "from = twofold@example.org\nsendmail = \(sendmail) -t -i\n".write(toFile: directory + "/send-email.conf", atomically: true, encoding: .utf8)
        for destination in ["alice@example.com\nBcc: eve@example.net", "alice@example.com, eve@example.net", "Eve <eve@example.net>", "eve"] {
            let run = try ChildProcess.run([TestPaths.sendEmail, "--config", directory + "/send-email.conf"],
                                           environment: ["PATH": "/usr/bin:/bin", "TWOFOLD_DESTINATION": destination, "TWOFOLD_SUBJECT": "s"],
                                           input: "code 123456\n")
            #expect(run.status == 2 && run.output.contains("not a plain email address"), "\(destination): \(run.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/ran"), "sendmail ran")
        // The service itself refuses such a destination before any command (ContactAddress's form).
        let service = try DeliveryServiceProcess.bare("email_command = \(sendmail)")
        let response = try service.request(makeRequest(destination: "alice@example.com\r\nBcc: eve@example.net"))
        #expect(response.outcome == "refused" && response.detail == "destination contains a control character", "\(response)")
        let spaced = try service.request(makeRequest(destination: "Alice@Example.com"))
        #expect(spaced.outcome == "refused" && spaced.detail == "destination is not a plain email address", "\(spaced)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/ran"), "sendmail ran")
    }

    @Test("sms: send-sms and curl reach a real HTTP gateway with the token from the service's credentials; no token, body or code in curl's argv")
    func smsEndToEnd() throws {
        let directory = try makeTemporaryDirectory("dlv-sms")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // systemd's LoadCredential=sms-token: a directory only the service reads, named in its environment.
        let (credentials, token) = try SMSGateway.credentials(in: directory)
        // curl through a wrapper that records its own argv, as /proc/PID/cmdline shows it to everyone.
        let wrapper = directory + "/curl"
        try writeScript(wrapper, "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" >> \(directory)/curl-argv\nexec /usr/bin/curl \"$@\"\n")
        let gateway = try SMSGateway(directory: directory, settings: """
            content_type = application/json
            body = {"to": "{to}", "text": "{message}", "user": "{user}"}
            token_header = Authorization: Bearer {token}
            max_time = 5
            curl = \(wrapper)
            """)
        let record = gateway.record
        let service = try DeliveryServiceProcess.bare("sms_command = \(gateway.command)", environment: ["CREDENTIALS_DIRECTORY": credentials])
        let request = makeRequest(channel: "sms", destination: "+4915112345678", user: "bob \"the builder\"")

        let response = try service.request(request)
        #expect(response == DeliveryResponse(outcome: "sent"), "\(service.log)")

        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let received = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        let headers = try #require(received["headers"] as? [String: String])
        #expect(received["method"] as? String == "POST" && received["path"] as? String == "/v1/messages", "\(received)")
        #expect(headers["authorization"] == "Bearer \(token)", "\(headers)")
        #expect(headers["content-type"] == "application/json", "\(headers)")
        // The body is JSON whose fields hold the values as they were (escaped on the way, decoded here).
        let body = try #require(try JSONSerialization.jsonObject(with: Data((received["body"] as? String ?? "").utf8)) as? [String: String])
        #expect(body == ["to": "+4915112345678", "text": request.message.trimmingCharacters(in: .newlines), "user": "bob \"the builder\""], "\(body)")
        #expect(body["text"]?.contains(request.code) == true)

        // What curl's argv showed: its options, none of the secrets.
        let argv = try String(contentsOfFile: directory + "/curl-argv", encoding: .utf8)
        #expect(argv.contains("--config"), "\(argv)")
        for secret in [token, request.code, "Bearer", "+4915112345678"] {
            #expect(!argv.contains(secret), "curl's argv holds \(secret): \(argv)")
        }
        // The private temporary directory is gone.
        #expect(service.stop() == 0)
        #expect(!service.log.contains(request.code) && !service.log.contains(token), "\(service.log)")
    }

    @Test("sms: a gateway's 401 is 'failed' with its answer as the detail, the echoed code blanked out")
    func smsGatewayRejects() throws {
        let directory = try makeTemporaryDirectory("dlv-sms")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "t0ken\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        let gateway = try SMSGateway(directory: directory, path: "/reject", settings: """
            content_type = application/x-www-form-urlencoded
            body = To={to}&Body={message}
            token_header = X-Token: {token}
            token_file = \(directory)/token
            """)
        let service = try DeliveryServiceProcess.bare("sms_command = \(gateway.command)")
        var request = makeRequest(channel: "sms")
        request.message = "Code \(request.code)"
        let response = try service.request(request)
        #expect(response.outcome == "failed", "\(response)")
        #expect(response.detail == "exit status 1: send-sms: the gateway answered HTTP 401: rejected: To=%2B4915112345678&Body=Code%20[code]",
                "\(response)")
        #expect(service.stop() == 0)
        #expect(!service.log.contains(request.code), "\(service.log)")
    }

    // MARK: commands that misbehave

    @Test("a command that exits 3 echoing the code on stderr: 'failed', exit status and first line, the code replaced")
    func failingCommand() throws {
        let service = try DeliveryServiceProcess.bare(start: false)
        let script = service.directory + "/fail.sh"
        try writeScript(script, "#!/bin/sh\necho\necho \"gateway says: $(head -n 1) \\033[31mred\" >&2\necho second line >&2\nexit 3\n")
        try service.configure("email_command = \(script)")
        try service.start()
        let request = makeRequest()
        let response = try service.request(request)
        #expect(response == DeliveryResponse(outcome: "failed",
                                             detail: "exit status 3: gateway says: Your login code for host1 is [code]. ?[31mred"), "\(response)")
        #expect(service.stop() == 0)
        #expect(service.log.contains("outcome=failed") && !service.log.contains(request.code), "\(service.log)")
    }

    @Test("a command that hangs (and a child of it): 'timeout' within the limit and the kill grace, the whole process group killed")
    func hangingCommand() throws {
        let service = try DeliveryServiceProcess.bare(start: false)
        let script = service.directory + "/hang.sh"
        // A child that ignores SIGTERM, then the command itself sleeping: SIGKILL must reach both.
        try writeScript(script, """
            #!/bin/sh
            (trap '' TERM; exec sleep 60) &
            echo $! > \(service.directory)/child.pid
            echo $$ > \(service.directory)/command.pid
            echo waiting for the gateway
            sleep 60
            """)
        try service.configure("email_command = \(script)\ncommand_timeout_ms = 1000")
        try service.start()
        let request = makeRequest()
        let started = Date()
        let response = try service.request(request)
        let elapsed = Date().timeIntervalSince(started)
        #expect(response == DeliveryResponse(outcome: "timeout", detail: "no exit within 1000 ms, killed: waiting for the gateway"), "\(response)")
        #expect(elapsed >= 1.0 && elapsed < 1.0 + 0.5 + 1.5, "answered after \(elapsed) s")
        for name in ["command.pid", "child.pid"] {
            let pid = try #require(Int32((try String(contentsOfFile: service.directory + "/" + name, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)))
            // Gone, or a zombie waiting for a reaper: either way it runs no more. (SIGKILL is sent
            // before the answer; on a busy machine the process may take a moment to be scheduled and die.)
            let until = Date().addingTimeInterval(5)
            var state = processState(pid)
            while state != nil && state != "Z" && Date() < until {
                usleep(10_000)
                state = processState(pid)
            }
            #expect(state == nil || state == "Z", "\(name) \(pid) is still running (state \(String(describing: state)))")
        }
        #expect(service.stop() == 0)
        #expect(!service.log.contains(request.code), "\(service.log)")
    }

    @Test("a command that writes 16 MiB: read and dropped past 4 KiB, the service answers and goes on serving")
    func chattyCommand() throws {
        let service = try DeliveryServiceProcess.bare(start: false)
        let script = service.directory + "/chatty.sh"
        try writeScript(script, "#!/bin/sh\ncat >&2\nhead -c 16777216 /dev/urandom\nexit 4\n")
        try service.configure("email_command = \(script)")
        try service.start()
        let request = makeRequest()
        let response = try service.request(request)
        #expect(response == DeliveryResponse(outcome: "failed", detail: "exit status 4: Your login code for host1 is [code]."), "\(response)")
        let dropped = service.log.firstMatch(of: /output_dropped=(\d+)/).flatMap { Int($0.1) } ?? 0
        #expect(dropped >= 16_777_216 - 4_096, "\(service.log)")
        // The service's memory did not take the output in: far below 16 MiB over its start.
        let status = try String(contentsOfFile: "/proc/\(service.process?.pid ?? 0)/status", encoding: .utf8)
        let peakKiB = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(whereSeparator: \.isWhitespace)[1]) } ?? 0
        #expect(peakKiB > 0 && peakKiB < 64 * 1024, "peak RSS \(peakKiB) KiB")
        #expect(try service.request(makeRequest()).outcome == "failed")
        #expect(service.stop() == 0)
        #expect(!service.log.contains(request.code))
    }

    @Test("a missing command is 'failed' naming it; a channel without a command is 'unconfigured'")
    func missingAndUnconfigured() throws {
        let service = try DeliveryServiceProcess.bare("email_command = /nonexistent/send-email --x")
        let check = try ChildProcess.run([TestPaths.twofoldDeliver, "--config", service.configPath, "--check-config"])
        #expect(check.status == 1 && check.output.contains("error: email_command: /nonexistent/send-email: No such file or directory"), "\(check.output)")
        let email = try service.request(makeRequest())
        #expect(email == DeliveryResponse(outcome: "failed", detail: "cannot run /nonexistent/send-email: No such file or directory"), "\(email)")
        let sms = try service.request(makeRequest(channel: "sms"))
        #expect(sms == DeliveryResponse(outcome: "unconfigured", detail: "no sms_command in the delivery service's configuration"), "\(sms)")
        #expect(service.stop() == 0)
    }

    @Test("the command's whole world: argv as configured, only the documented environment, the message on stdin, a process group of its own")
    func commandEnvironment() throws {
        let service = try DeliveryServiceProcess.bare(start: false)
        let probe = service.directory + "/probe.py"
        try writeScript(probe, """
            #!/usr/bin/python3
            import json, os, sys
            json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "stdin": sys.stdin.read(),
                       "own_group": os.getpgid(0) == os.getpid(), "cwd": os.getcwd()}, open(sys.argv[1], "w"))
            """)
        try service.configure("sms_command = \(probe) \(service.directory)/seen.json \"two words\" x\"y z\"")
        try service.start(environment: DeliveryServiceProcess.systemdEnvironment(["CREDENTIALS_DIRECTORY": "/run/credentials/twofold-deliver.service", "HOME": "/root", "SECRET_OF_THE_SERVICE": "x"]))
        let request = makeRequest(channel: "sms", user: "bob")
        #expect(try service.request(request) == DeliveryResponse(outcome: "sent"), "\(service.log)")
        let seen = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: service.directory + "/seen.json"))) as? [String: Any])
        #expect(seen["argv"] as? [String] == [service.directory + "/seen.json", "two words", "xy z"])
        #expect(seen["env"] as? [String: String] == [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TWOFOLD_CHANNEL": "sms", "TWOFOLD_USER": "bob",
            "TWOFOLD_DESTINATION": "+4915112345678", "TWOFOLD_SUBJECT": "Your Twofold login code",
            "CREDENTIALS_DIRECTORY": "/run/credentials/twofold-deliver.service",
        ], "\(seen["env"] ?? "")")
        #expect(seen["stdin"] as? String == request.message)
        #expect(seen["own_group"] as? Bool == true)
        #expect(service.stop() == 0)
    }

    // MARK: concurrency and shutdown

    @Test("SIGTERM at the moment of READY=1 stops the service every time (the signal is never lost nor ignored)")
    func sigtermRightAfterReady() throws {
        // The race it guards against was a few starts in a hundred under load: many rounds.
        for round in 0..<100 {
            let service = try DeliveryServiceProcess()
            let process = try #require(service.process)
            process.signal(SIGTERM)
            // A lost SIGTERM leaves it running: give up after 10 s, not never.
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            guard !process.isRunning else {
                Issue.record("round \(round): SIGTERM right after READY=1 was lost")
                process.signal(SIGKILL)
                process.wait()
                return
            }
            #expect(process.wait() == 0, "round \(round): \(service.log)")
        }
    }

    @Test("beyond max_concurrent a request is answered 'failed' (busy) at once; SIGTERM lets the running one finish and exits 0")
    func busyAndGracefulStop() throws {
        let service = try DeliveryServiceProcess.bare(start: false)
        let fifo = service.directory + "/started"
        #expect(mkfifo(fifo, 0o600) == 0)
        let script = service.directory + "/slow.sh"
        // Says it has started (the test's read of the FIFO returns), then takes a while.
        try writeScript(script, "#!/bin/sh\necho started > \(fifo)\nexec sleep 1\n")
        try service.configure("email_command = \(script)\nmax_concurrent = 1")
        try service.start()

        let first = makeRequest()
        let firstFD = try DeliveryClient.connect(service.socketPath)
        defer { close(firstFD) }
        try DeliveryClient.write(firstFD, try DeliveryWire.frame(first))
        // Opening the FIFO blocks until the command opens it to write: then it runs.
        let reader = open(fifo, O_RDONLY | O_CLOEXEC)
        var line = [UInt8](repeating: 0, count: 64)
        let n = read(reader, &line, line.count)
        close(reader)
        #expect(n > 0 && String(decoding: line[0..<max(n, 0)], as: UTF8.self) == "started\n")

        let before = Date()
        let busy = try service.request(makeRequest())
        #expect(busy == DeliveryResponse(outcome: "failed", detail: "busy"), "\(busy)")
        #expect(Date().timeIntervalSince(before) < 0.9, "busy was not answered at once")

        // SIGTERM while the first command runs: no new connection, the first answered, exit 0.
        service.process?.signal(SIGTERM)
        let answer = try #require(try DeliveryClient.readFrame(firstFD, timeoutSeconds: 10))
        #expect(try JSONDecoder().decode(DeliveryResponse.self, from: Data(answer)) == DeliveryResponse(outcome: "sent"))
        #expect(service.process?.wait() == 0, "\(service.log)")
        #expect(throws: HarnessError.self) { _ = try DeliveryClient.connect(service.socketPath) }
        // (The busy connection may still be counted: its thread closes it just after answering.)
        #expect(service.log.contains("shutting down: no new connections connections=") && service.log.contains("running=1")
                && service.log.contains("<5>stopped"), "\(service.log)")
    }

    // MARK: who may ask, and what a request may be

    @Test("a peer of another uid (a real test user) is closed unread and logged; the daemon's uid by daemon_user is served")
    func wrongPeer() throws {
        let me = try TestUser.user
        let service = try DeliveryServiceProcess.bare("email_command = /bin/true")
        let frame = try DeliveryWire.frame(makeRequest())
        let client = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            try:
                s.sendall(bytes.fromhex(sys.argv[2]))
            except OSError:
                pass
            try:
                data = s.recv(65536)
            except ConnectionResetError:  # closed with the request unread: the kernel resets
                data = b""
            print("closed" if not data else "answered: " + data[4:].decode())
            """
        let hex = frame.map { String(format: "%02x", $0) }.joined()
        let asUser = try ChildProcess.run(me.setpriv + ["/usr/bin/python3", "-c", client, service.socketPath, hex])
        #expect(asUser.status == 0 && asUser.output.trimmingCharacters(in: .whitespacesAndNewlines) == "closed", "\(asUser.output)")
        #expect(service.log.contains("<5>connection refused: the peer is not the daemon's user"), "\(service.log)")
        // The test process's uid is still served.
        #expect(try service.request(makeRequest()).outcome == "sent")
        #expect(service.stop() == 0)

        // daemon_user names the test user: now it is served (getpwnam at the connection), root is not.
        let byName = try DeliveryServiceProcess.bare("email_command = /bin/true", peers: "daemon_user = \(me.name)")
        let served = try ChildProcess.run(me.setpriv + ["/usr/bin/python3", "-c", client, byName.socketPath, hex])
        #expect(served.output.contains("answered: {\"outcome\":\"sent\"}"), "\(served.output)\n\(byName.log)")
        #expect(try byName.exchange(frame) == nil, "root was answered")
        #expect(byName.stop() == 0)
    }

    @Test("malformed frames: refused or closed, and the service goes on serving")
    func malformedFrames() throws {
        let service = try DeliveryServiceProcess.bare("email_command = /bin/true")
        func refused(_ bytes: [UInt8], keepOpen: Bool = false) throws -> String? {
            guard let answer = try service.exchange(bytes, keepOpen: keepOpen) else { return nil }
            let response = try JSONDecoder().decode(DeliveryResponse.self, from: Data(answer))
            #expect(response.outcome == "refused", "\(response)")
            return response.detail
        }
        func framed(_ json: String) -> [UInt8] {
            let body = Array(json.utf8), n = UInt32(body.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
        }
        #expect(try refused([0xFF, 0xFF, 0xFF, 0xFF]) == "the frame announces 4294967295 bytes; at most 16384")
        #expect(try refused([0, 0, 0x40, 0x01] + [UInt8](repeating: 0x20, count: 16_385)) == "the frame announces 16385 bytes; at most 16384")
        #expect(try refused(framed("not json at all")) == "the request is not a JSON object")
        #expect(try refused(framed("")) == "the request is not a JSON object")
        #expect(try refused(framed("[1, 2]")) == "the request is not a JSON object")
        #expect(try refused(framed("{}")) == "the request has no version")
        #expect(try refused(framed("{\"version\": 2, \"anything\": 1}")) == "protocol version 2 is not supported (this service speaks 1)")
        #expect(try refused(framed("{\"version\": 1, \"channel\": \"email\"}")) == "the request has no 'user'")
        #expect(try refused(framed(#"{"version":1,"channel":"email","user":5,"destination":"a@b.cc","subject":"","message":"m","code":"1"}"#))
                == "the request's 'user' is not a string")
        var request = makeRequest()
        request.channel = "pigeon"
        #expect(try refused(try DeliveryWire.frame(request)) == "unknown channel (this service sends email and sms)")
        request = makeRequest()
        request.message = String(repeating: "x", count: 8_193)
        #expect(try refused(try DeliveryWire.frame(request)) == "message is longer than 8192 bytes")
        request = makeRequest()
        request.subject = "two\nlines"
        #expect(try refused(try DeliveryWire.frame(request)) == "subject contains a control character")
        request = makeRequest()
        request.subject = String(repeating: "s", count: 201)
        #expect(try refused(try DeliveryWire.frame(request)) == "subject is longer than 200 bytes")
        request = makeRequest()
        request.user = String(repeating: "u", count: 257)
        #expect(try refused(try DeliveryWire.frame(request)) == "user is longer than 256 bytes")
        request = makeRequest(channel: "sms", destination: "+49 151 12345678")
        #expect(try refused(try DeliveryWire.frame(request)) == "destination is not a phone number in E.164 form")
        request = makeRequest()
        request.code = ""
        #expect(try refused(try DeliveryWire.frame(request)) == "code is empty")
        // Half a frame, then the peer hangs up: closed, nothing to answer.
        #expect(try service.exchange([0, 0, 0, 100] + Array("{\"version\"".utf8)) == nil)
        // Half a frame, and the peer waits: refused at the 2 s read deadline.
        #expect(try refused([0, 0, 0, 100, 0x7B], keepOpen: true) == "no whole request within 2000 ms")

        #expect(try service.request(makeRequest()) == DeliveryResponse(outcome: "sent"))
        #expect(service.process?.isRunning == true)
        #expect(service.stop() == 0)
    }
}
