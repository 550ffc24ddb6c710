import Foundation
import Testing
import TwofoldTestSupport
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
#if canImport(Glibc)
import Glibc
#endif

/// `twofoldd` over its real Unix socket.
@Suite("twofoldd over its socket")
struct DaemonSocketTests {
    @Test("the right code succeeds, a wrong one fails, a replay fails")
    func successWrongReplay() throws {
        let daemon = try DaemonProcess()
        let alice = try daemon.provision("alice")
        let code = alice.code()

        #expect(try daemon.login("alice", answer: alice.wrongCode()).verdict == .failure)
        let first = try daemon.login("alice", answer: code)
        #expect(first.verdict == .success)
        #expect(first.transcript.contains(.promptEchoOff("Verification code: ")))
        #expect(try daemon.login("alice", answer: code).verdict == .failure, "the same code must not work twice")
        #expect(try daemon.login("alice", answer: alice.code(offset: -1)).verdict == .failure, "an older code after a newer one")
    }

    @Test("an unknown user is ignored when nobody is required, denied when everyone is")
    func unknownUser() throws {
        let open = try DaemonProcess()
        #expect(try open.login("nosuchuser", answer: "123456").verdict == .ignore)

        let strict = try DaemonProcess(extraConfig: "require = everyone")
        let outcome = try strict.login("nosuchuser", answer: "123456")
        #expect(outcome.verdict == .denied)
        #expect(outcome.transcript.contains { if case .errorMessage = $0 { true } else { false } })
    }

    @Test("empty, malformed and over-long answers fail without crashing the daemon", arguments: ["", "12345", "12a456", "1234567", "8000 nines"])
    func badAnswers(answer label: String) throws {
        let answer = label == "8000 nines" ? String(repeating: "9", count: 8000) : label
        let daemon = try DaemonProcess()
        let bob = try daemon.provision("bob")
        #expect(try daemon.login("bob", answer: answer).verdict == .failure)
        #expect(try daemon.login("bob", answer: bob.code()).verdict == .success)
    }

    @Test("repeated failures lock the user; an admin unlock clears it")
    func lockAndUnlock() throws {
        let daemon = try DaemonProcess(extraConfig: "max_failures = 3")
        let carol = try daemon.provision("carol")
        #expect(try daemon.login("carol", answer: carol.wrongCode()).verdict == .failure)
        #expect(try daemon.login("carol", answer: carol.wrongCode()).verdict == .failure)
        #expect(try daemon.login("carol", answer: carol.wrongCode()).verdict == .locked)
        let locked = try daemon.login("carol", answer: carol.code())
        #expect(locked.verdict == .locked, "a locked user is refused even with the right code")
        #expect(try daemon.control(.unlock(user: "carol")) == .ok)
        #expect(try daemon.login("carol", answer: carol.code()).verdict == .success)
    }

    @Test("a frame announcing more than the maximum gets a protocol error and the daemon keeps serving")
    func oversizedFrame() throws {
        let daemon = try DaemonProcess()
        let dave = try daemon.provision("dave")
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        RawSocket.send(fd, [0x40, 0x00, 0x00, 0x00, 1, 0x01])   // 1 GiB announced
        let (bytes, eof) = RawSocket.readToEOF(fd, timeoutSeconds: 10)
        #expect(eof, "the daemon closes the connection")
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        decoder.append(bytes)
        let reply = try decoder.next()
        guard case .protocolError(let reason)? = reply else {
            Issue.record("expected PROTOCOL_ERROR, got \(String(describing: reply))")
            return
        }
        #expect(reason.contains("large") || reason.contains("exceeds") || reason.contains("65536"))
        #expect(try daemon.login("dave", answer: dave.code()).verdict == .success)
    }

    @Test("garbage bytes get a protocol error and a closed connection", arguments: [
        Array("GET / HTTP/1.1\r\n\r\n".utf8),
        [0x00, 0x00, 0x00, 0x02, 0x09, 0x01],                     // wrong version
        [0x00, 0x00, 0x00, 0x02, 0x01, 0x55],                     // unknown type
        [0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x01, 0x00, 0x20, 0x61, 0x62],  // field overruns the frame
        [0x00, 0x00, 0x00, 0x02, 0x01, 0x11],                     // a daemon-to-module message sent to the daemon
    ])
    func garbage(bytes: [UInt8]) throws {
        let daemon = try DaemonProcess()
        let erin = try daemon.provision("erin")
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        RawSocket.send(fd, bytes)
        let (reply, eof) = RawSocket.readToEOF(fd, timeoutSeconds: 10)
        #expect(eof)
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        decoder.append(reply)
        let message = try decoder.next()
        if case .protocolError? = message {} else { Issue.record("expected PROTOCOL_ERROR, got \(String(describing: message))") }
        #expect(try daemon.login("erin", answer: erin.code()).verdict == .success)
    }

    @Test("a half-sent frame left hanging stalls nobody and is closed at the idle timeout")
    func halfSentFrame() throws {
        let daemon = try DaemonProcess(extraConfig: "idle_timeout = 2")
        let frank = try daemon.provision("frank")
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        RawSocket.send(fd, [0x00, 0x00, 0x00, 0x40, 0x01, 0x01, 0x01])   // promises 64 bytes, sends 3
        // Others are served meanwhile.
        #expect(try daemon.login("frank", answer: frank.code()).verdict == .success)
        let (_, eof) = RawSocket.readToEOF(fd, timeoutSeconds: 30)
        #expect(eof, "the idle connection is closed by the daemon")
    }

    @Test("a client that trickles bytes is never idle, but is closed at the connection timeout")
    func trickleIsClosedAtTheTotalTimeout() throws {
        let daemon = try DaemonProcess(extraConfig: "idle_timeout = 2\nconnection_timeout = 4")
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        RawSocket.send(fd, [0x00, 0x00, 0x00, 0x40])   // a 64-byte frame, sent a byte at a time
        var sent = 0
        var closed = false
        var buffer = [UInt8](repeating: 0, count: 64)
        // One byte every half second (the poll is the pacing) until the daemon closes, at most 20 s.
        while !closed && sent < 40 {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 500) > 0 {
                closed = recv(fd, &buffer, buffer.count, 0) <= 0
            } else {
                RawSocket.send(fd, [0x01])
                sent += 1
            }
        }
        #expect(closed, "the daemon closes a connection past connection_timeout")
        // Reads kept it open past the 2 s idle timeout: ~8 bytes went out before the 4 s limit.
        #expect(sent >= 6, "closed after \(sent) bytes: the reads did not count as activity")
    }

    @Test("connections over max_connections get a refusal verdict at once (never a bare close); capacity returns when one leaves")
    func connectionCap() throws {
        let daemon = try DaemonProcess(extraConfig: "max_connections = 2")
        let olga = try daemon.provision("olga")
        let pete = try daemon.provision("pete")
        // The provisioning connections were closed by this side; a login is closed by the daemon,
        // after it has seen those closes (they were readable before this login connected). So the
        // daemon counts no connection when the three below arrive.
        #expect(try daemon.login("pete", answer: pete.code()).verdict == .success)
        // Three clients at once, each asking for a ping. Control connections stay open after an
        // answer, so two of them hold both slots; the third (whichever the daemon counted last) gets
        // ERROR_MSG and VERDICT DENIED without being read, then is closed.
        let ping = try FrameCodec.encode(.request(Array(try JSONEncoder().encode(ControlRequest.ping))))
        let clients = try (0..<3).map { _ in try RawSocket.connect(daemon.socketPath) }
        defer { clients.forEach { close($0) } }
        for fd in clients { RawSocket.send(fd, ping) }
        var answered = 0
        var refused = 0
        for fd in clients {
            var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
            var reply: Message?
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while poll(&pfd, 1, 10_000) > 0 {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                bytes.append(contentsOf: buffer[0..<n])
                decoder.append(buffer[0..<n])
                while let message = try decoder.next() { if case .errorMessage = message { continue }; reply = message }
                if reply != nil { break }
            }
            if case .response? = reply { answered += 1 } else if case .verdict(.denied, let reason)? = reply, reason?.contains("connections") == true { refused += 1 }
        }
        #expect(answered == 2 && refused == 1, "answered \(answered), refused \(refused)")
        // The refusal is audited (and logged) in the background, so as not to hold the connection.
        let logged = Date().addingTimeInterval(10)
        while !daemon.log.contains("all 2 connections are in use"), Date() < logged {}
        #expect(daemon.log.contains("all 2 connections are in use"))
        // Half-close each and wait for the daemon to close its side: then it has left those connections.
        for fd in clients {
            shutdown(fd, Int32(SHUT_WR))
            #expect(RawSocket.readToEOF(fd, timeoutSeconds: 10).eof)
        }
        // Its count drops just after the close, so ask again (each try is a real request, refused
        // at once while a slot is still held).
        var verdict: VerdictCode?
        for _ in 0..<1000 where verdict == nil {
            verdict = try? daemon.login("olga", answer: olga.code()).verdict
        }
        #expect(verdict == .success, "\(daemon.log.suffix(3000))")
    }

    @Test("many clients at once all get their verdicts")
    func manyClients() async throws {
        let daemon = try DaemonProcess()
        let accounts = try (0..<64).map { try daemon.provision("user\($0)") }
        let verdicts = try await withThrowingTaskGroup(of: VerdictCode.self) { group in
            for account in accounts {
                group.addTask { try daemon.login(account.user, answer: account.code()).verdict }
            }
            return try await group.reduce(into: [VerdictCode]()) { $0.append($1) }
        }
        #expect(verdicts.count == 64)
        #expect(verdicts.allSatisfy { $0 == .success })
    }

    @Test("concurrent logins with the same code: exactly one succeeds")
    func concurrentReplay() async throws {
        // A wide window: on a loaded machine the logins may start a minute after the code was
        // made, and the test is about one use of one code, not about the window.
        let daemon = try DaemonProcess(extraConfig: "window = 10")
        for round in 0..<10 {
            let account = try daemon.provision("race\(round)")
            let code = account.code()
            let verdicts = try await withThrowingTaskGroup(of: VerdictCode.self) { group in
                for _ in 0..<8 { group.addTask { try daemon.login(account.user, answer: code).verdict } }
                return try await group.reduce(into: [VerdictCode]()) { $0.append($1) }
            }
            #expect(verdicts.filter { $0 == .success }.count == 1, "round \(round): \(verdicts)\n\(daemon.log.suffix(3000))")
        }
    }

    @Test("5,000 pipelined control requests on one connection are all answered, in order, while logins go on")
    func pipelinedControlRequests() throws {
        let daemon = try DaemonProcess()
        let hana = try daemon.provision("hana")
        // Far more than the daemon buffers before it stops reading, and more than the socket buffers
        // hold: it must pause reading and resume, or the sender stalls and the count falls short.
        let count = 5_000
        var bytes: [UInt8] = []
        for i in 0..<count {
            let request: ControlRequest = i % 2 == 0 ? .ping : .showUser(user: "hana")
            bytes += try FrameCodec.encode(.request(Array(try JSONEncoder().encode(request))))
        }
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        let payload = bytes
        let sender = Thread { RawSocket.send(fd, payload) }
        sender.start()
        #expect(try daemon.login("hana", answer: hana.code()).verdict == .success, "a login is served while the control connection is busy")
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        var responses: [ControlResponse] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while responses.count < count, poll(&pfd, 1, 10_000) > 0 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            decoder.append(buffer[0..<n])
            while let message = try decoder.next() {
                guard case .response(let json) = message else { Issue.record("unexpected \(message)"); return }
                responses.append(try JSONDecoder().decode(ControlResponse.self, from: Data(json)))
            }
        }
        #expect(responses.count == count)
        for (i, response) in responses.enumerated() {
            if i % 2 == 0 {
                #expect(response == .ok, "response \(i)")
            } else if case .status(let status) = response {
                #expect(status.user == "hana", "response \(i)")
            } else {
                Issue.record("response \(i): \(response)")
            }
        }
    }

    @Test("a client that leaves at the code prompt is audited as abandoned; one that speaks out of turn gets a protocol error")
    func abandonedAndOutOfTurn() throws {
        let daemon = try DaemonProcess()
        _ = try daemon.provision("ivan")
        let start = try FrameCodec.encode(.authStart(AuthStart(user: "ivan", service: "sshd", rhost: nil, tty: nil)))
        let fd = try RawSocket.connect(daemon.socketPath)
        RawSocket.send(fd, start)
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var prompt: Message?
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while prompt == nil, poll(&pfd, 1, 10_000) > 0 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            decoder.append(buffer[0..<n])
            prompt = try decoder.next()
        }
        #expect(prompt == .promptEchoOff("Verification code: "))
        close(fd)
        // The audit record is committed after the close is noticed: ask until it is there.
        var abandoned = false
        for _ in 0..<500 where !abandoned {
            if case .audit(let entries) = try daemon.control(.audit(user: "ivan", sinceMillis: nil, outcome: "abandoned", limit: 10)) {
                abandoned = !entries.isEmpty
            }
        }
        #expect(abandoned, "\(daemon.log.suffix(2000))")

        // A second AUTH_START instead of the answer.
        let rude = try RawSocket.connect(daemon.socketPath)
        defer { close(rude) }
        RawSocket.send(rude, start + start)
        let (bytes, eof) = RawSocket.readToEOF(rude, timeoutSeconds: 10)
        #expect(eof)
        var replies = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        replies.append(bytes[...])
        var messages: [Message] = []
        while let message = try replies.next() { messages.append(message) }
        #expect(messages.first == .promptEchoOff("Verification code: "))
        #expect(messages.contains { if case .protocolError = $0 { true } else { false } }, "\(messages)")
    }

    @Test("after a failure the next answer waits out the throttle delay without holding up other logins")
    func throttleDelayDoesNotBlockOthers() throws {
        let daemon = try DaemonProcess(throttleDelayMillis: 3000)
        let jack = try daemon.provision("jack")
        let kate = try daemon.provision("kate")
        #expect(try daemon.login("jack", answer: jack.wrongCode()).verdict == .failure)
        // jack answers; the daemon holds that answer for the delay.
        let fd = try RawSocket.connect(daemon.socketPath)
        defer { close(fd) }
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        RawSocket.send(fd, try FrameCodec.encode(.authStart(AuthStart(user: "jack", service: "sshd"))))
        #expect(try RawSocket.nextMessage(fd, &decoder) == .promptEchoOff("Verification code: "))
        RawSocket.send(fd, try FrameCodec.encode(.answer(jack.code())))
        // Meanwhile kate logs in from start to verdict...
        #expect(try daemon.login("kate", answer: kate.code()).verdict == .success)
        // ...while jack's verdict is still held back.
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 0) == 0, "jack's verdict came before kate's login finished: the delay blocked the daemon")
        guard case .verdict(let verdict, _)? = try RawSocket.nextMessage(fd, &decoder) else {
            Issue.record("no verdict for jack")
            return
        }
        #expect(verdict == .success, "the right code works once the delay has passed")
    }

    @Test("a success is durable: after SIGKILL and restart the code is still refused")
    func crashAfterSuccess() throws {
        let daemon = try DaemonProcess()
        let gina = try daemon.provision("gina")
        let code = gina.code()
        #expect(try daemon.login("gina", answer: code).verdict == .success)
        daemon.kill()
        try daemon.start()
        #expect(try daemon.login("gina", answer: code).verdict == .failure)
    }

    @Test("SIGTERM lets an in-flight dialog finish, then the daemon exits cleanly")
    func gracefulShutdown() throws {
        let daemon = try DaemonProcess()
        let hank = try daemon.provision("hank")
        let connection = try daemon.connect()
        defer { connection.close() }
        try connection.send(.authStart(AuthStart(user: "hank", service: "sshd")))
        #expect(try connection.receive() == .promptEchoOff("Verification code: "))
        daemon.process!.signal(SIGTERM)
        // The listener closes at once; the dialog in flight still gets its verdict.
        try connection.send(.answer(hank.code()))
        #expect(try connection.receive() == .verdict(.success, reason: nil))
        #expect(daemon.process!.wait() == 0)
        #expect(daemon.log.contains("stopped"))
    }

    @Test("a peer that is neither root nor the user is refused")
    func foreignPeer() throws {
        let daemon = try DaemonProcess()
        let other = try TestUser.other
        _ = try daemon.provision(other.name)
        // A client running as the test user asks about another real, enrolled account: the daemon
        // must refuse from SO_PEERCRED alone.
        let result = try runAsTestUser(socketPath: daemon.socketPath, user: other.name)
        #expect(result == "DENIED", "got \(result)")
        #expect(daemon.log.contains("may not ask about this user"))
        // And an admin request from the test user is refused too.
        let admin = try runAsTestUser(socketPath: daemon.socketPath, user: nil)
        #expect(admin.contains("permissionDenied"), "got \(admin)")
    }

    @Test("logs never contain a code or a secret")
    func noSecretsInLogs() throws {
        let daemon = try DaemonProcess()
        let judy = try daemon.provision("judy")
        let code = judy.code()
        let wrong = judy.wrongCode()
        _ = try daemon.login("judy", answer: wrong)
        _ = try daemon.login("judy", answer: code)
        daemon.stop()
        let log = daemon.log
        var raw = judy.secret.copyBytes()
        let base32 = Base32.encode(raw)
        Crypto.wipe(&raw)
        #expect(!log.isEmpty)
        #expect(!log.contains(base32))
        #expect(!log.contains(code))
        #expect(!log.contains(wrong))
    }
}

/// Sends one frame from a process running as the test user (TestUser.user; the test itself runs as
/// root): a login dialog's AUTH_START for `user`, or an admin request (list users) when nil.
func runAsTestUser(socketPath: String, user: String?) throws -> String {
    let frame = user != nil
        ? try FrameCodec.encode(.authStart(AuthStart(user: user!, service: "sshd")))
        : try FrameCodec.encode(.request(Array(try JSONEncoder().encode(ControlRequest.listUsers(after: nil, limit: 10)))))
    return try runAsTestUser(socketPath: socketPath, frame: frame)
}

func runAsTestUser(socketPath: String, frame: [UInt8]) throws -> String {
    try runAs(try TestUser.user, socketPath: socketPath, frame: frame)
}

/// Sends one frame from a process running as `account`: a few lines of Python under `setpriv`,
/// which print the verdict name, or the text of any other first message (a RESPONSE's JSON).
func runAs(_ account: TestUser, socketPath: String, frame: [UInt8]) throws -> String {
    let framePath = try makeTemporaryDirectory("tu") + "/frame.bin"
    try Data(frame).write(to: URL(fileURLWithPath: framePath))
    chmod(framePath, 0o644)
    let (_, output) = try run(account.setpriv + [
                               "/usr/bin/python3", "-c", """
    import socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(open(sys.argv[2], 'rb').read())
    data = b''
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], 'big'):
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    body = data[4:]
    if body[1] == 0x20:
        codes = {0:'SUCCESS',1:'FAILURE',2:'LOCKED',3:'IGNORE',4:'UNAVAILABLE',5:'BAD_REQUEST',6:'DENIED'}
        print(codes[body[5]])
    else:
        print(body[5:].decode('utf-8', 'replace'))
    """, socketPath, framePath])
    return output.trimmingCharacters(in: .whitespacesAndNewlines)
}
