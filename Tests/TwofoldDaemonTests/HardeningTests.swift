import Foundation
import Logging
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
@testable import TwofoldDaemon
import TwofoldStore
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The holes of the hardening issue, each attacked the way it was found, against a real daemon over
/// its socket (and, where the module decides, through the real module and libpam).
@Suite("hardening: the ways past the second factor and the ways to lock everyone out")
struct HardeningTests {
    /// A dialog held open by hand: AUTH_START sent, the prompt received.
    static func openDialog(_ daemon: DaemonProcess, user: String, ruser: String? = nil, rhost: String? = "192.0.2.9",
                           deadlineMillis: UInt32 = 10_000) throws -> (TwofoldConnection, Message) {
        let connection = try daemon.connect(timeout: 15)
        try connection.send(.authStart(AuthStart(user: user, service: "sshd", rhost: rhost, tty: "ssh", ruser: ruser,
                                                 deadlineMillis: deadlineMillis)))
        var message = try connection.receive()
        while case .errorMessage = message { message = try connection.receive() }
        return (connection, message)
    }

    static func audit(_ daemon: DaemonProcess, user: String? = nil) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit request failed")
        }
        return entries
    }

    // MARK: 1. A wait never turns into a pass

    @Test("a throttle delay longer than the client waits is answered at once with a failure, not held past its deadline")
    func delayLongerThanTheClientWaits() throws {
        let daemon = try DaemonProcess(throttleDelayMillis: 16_000)
        let tom = try daemon.provision("tom")
        #expect(try daemon.login("tom", answer: tom.wrongCode()).verdict == .failure)
        // The client waits 3 s: held for the 16 s delay, this dialog would throw timedOut.
        let outcome = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "tom", service: "sshd"),
                                          timeoutSeconds: 3) { _, _ in tom.code() }
        #expect(outcome.verdict == .failure)
        #expect(outcome.shownTexts.contains { $0.contains("wait") && $0.contains("second") }, "\(outcome.shownTexts)")
        let records = try Self.audit(daemon, user: "tom")
        #expect(records.last?.outcome == "throttled", "\(records.map(\.outcome))")
        #expect(!records.contains { $0.action == "verify" && $0.outcome == "success" })
    }

    @Test("a right code whose client gave up during the delay is used up and audited as abandoned, not as a login")
    func abandonedRightCode() throws {
        let daemon = try DaemonProcess(throttleDelayMillis: 2_000)
        let una = try daemon.provision("una")
        #expect(try daemon.login("una", answer: una.wrongCode()).verdict == .failure)
        let code = una.code()
        // The client answers, then leaves while the daemon holds the answer for the delay.
        let (gone, prompt) = try Self.openDialog(daemon, user: "una")
        #expect(prompt == .promptEchoOff("Verification code: "))
        try gone.send(.answer(code))
        gone.close()
        // The daemon decides the answer once the delay is over, as abandoned (waited for on its audit).
        let deadline = Date().addingTimeInterval(15)
        while try !Self.audit(daemon, user: "una").contains(where: { $0.outcome == "abandoned" }), Date() < deadline {}
        // The same code at a new dialog is a replay: the step was used up.
        let again = try daemon.login("una", answer: code)
        #expect(again.verdict == .failure)
        let outcomes = try Self.audit(daemon, user: "una").filter { $0.action == "verify" }.map { "\($0.outcome): \($0.reason ?? "")" }
        #expect(outcomes.contains { $0.hasPrefix("abandoned: right code, but the client gave up") }, "\(outcomes)")
        #expect(!outcomes.contains { $0.hasPrefix("success") }, "\(outcomes)")
    }

    @Test("a prompt left unanswered past idle_timeout ends with a VERDICT, not a bare close, and is audited")
    func idleTimeoutGivesAVerdict() throws {
        let daemon = try DaemonProcess(extraConfig: "idle_timeout = 1")
        _ = try daemon.provision("vera")
        let (connection, prompt) = try Self.openDialog(daemon, user: "vera")
        defer { connection.close() }
        #expect(prompt == .promptEchoOff("Verification code: "))
        let verdict = try connection.receive()
        guard case .verdict(.failure, let reason) = verdict else {
            Issue.record("expected VERDICT FAILURE, got \(verdict)")
            return
        }
        #expect(reason?.contains("idle_timeout") == true)
        #expect(throws: ClientError.closedByDaemon) { try connection.receive() }
        #expect(try Self.audit(daemon, user: "vera").last?.outcome == "abandoned")
    }

    // MARK: 2. A flood costs the flooder

    @Test("dialogs are capped per target user, per PAM_RUSER and per PAM_RHOST, and a refused one gets a verdict")
    func dialogCaps() throws {
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_user = 2\nmax_dialogs_per_ruser = 3\nmax_dialogs_per_rhost = 5")
        for name in ["wes", "wim", "wyn"] { _ = try daemon.provision(name) }
        // Two dialogs for wes are at the prompt; the third is refused before any prompt.
        let held = try (0..<2).map { _ in try Self.openDialog(daemon, user: "wes") }
        #expect(held.allSatisfy { $0.1 == .promptEchoOff("Verification code: ") })
        let (third, refusal) = try Self.openDialog(daemon, user: "wes")
        third.close()
        guard case .verdict(.denied, let reason) = refusal else { Issue.record("expected DENIED, got \(refusal)"); return }
        #expect(reason?.contains("login dialogs for 'wes'") == true)
        // Another user is not affected; capacity comes back when a dialog ends.
        #expect(try daemon.login("wim", answer: "000000").verdict == .failure)
        held[0].0.close()
        #expect(try Self.openDialog(daemon, user: "wes").1 == .promptEchoOff("Verification code: "))

        // su/sudo as one requesting user against many targets: capped by PAM_RUSER.
        let byMallory = try ["wim", "wyn", "wes"].map { try Self.openDialog(daemon, user: $0, ruser: "mallory", rhost: nil) }
        #expect(byMallory.prefix(2).allSatisfy { $0.1 == .promptEchoOff("Verification code: ") })
        // (wes already has two dialogs: refused for the target; the PAM_RUSER cap is checked next.)
        let (fourth, byRUser) = try Self.openDialog(daemon, user: "wyn", ruser: "mallory", rhost: nil)
        fourth.close()
        #expect(byRUser == .verdict(.denied, reason: "refused: 3 login dialogs requested by 'mallory' are already in progress")
                || byRUser == .verdict(.denied, reason: "refused: 2 login dialogs requested by 'mallory' are already in progress"),
                "\(byRUser)")
        _ = held
        #expect(try Self.audit(daemon).contains { $0.outcome == "refused" })
    }

    @Test("through the real module with failmode=open and pam_permit: wrong codes then anything, and a flood of dialogs, never let anyone in")
    func failOpenNeverPassesAStartedOrRefusedDialog() throws {
        try PAMBuild.require()
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_user = 2", throttleDelayMillis: 16_000)
        let abe = try daemon.provision("abe")
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open", thenPermit: true)
        #expect(try open.authenticate("abe", answers: [abe.wrongCode()]).result == "PAM_AUTH_ERR")
        let anything = try open.authenticate("abe", answers: ["123456"])
        #expect(anything.result == "PAM_AUTH_ERR", "\(anything.lines)")
        #expect(anything.lines.contains { $0.hasPrefix("ERROR ") && $0.contains("wait") })
        // Two dialogs for abe held at the prompt (the cap): the module's own dialog is refused with a
        // verdict, which it maps to a failure, not to "daemon unavailable".
        let held = try (0..<2).map { _ in try Self.openDialog(daemon, user: "abe") }
        let flooded = try open.authenticate("abe", answers: [abe.code()])
        #expect(flooded.result == "PAM_AUTH_ERR", "\(flooded.lines)")
        held.forEach { $0.0.close() }
    }

    @Test("a local user's flood of connections costs that user: per-uid caps, and the slots reserved for root keep root's logins going")
    func connectionFloodCostsTheFlooder() throws {
        let daemon = try DaemonProcess(extraConfig: "max_connections = 6\nreserved_root_connections = 3\nmax_connections_per_uid = 2")
        let ada = try daemon.provision("ada")
        let first = try Flooder(as: try TestUser.user, socket: daemon.socketPath, connections: 3)
        defer { first.release() }
        #expect(first.results == ["RESPONSE", "RESPONSE", "DENIED refused: uid \(try TestUser.user.uid) already holds 2 connections"],
                "\(first.results)")
        let second = try Flooder(as: try TestUser.other, socket: daemon.socketPath, connections: 2)
        defer { second.release() }
        #expect(second.results == ["RESPONSE", "DENIED refused: the remaining connections are reserved for root's login dialogs"],
                "\(second.results)")
        // Three non-root connections are held, the non-root share is full: root still logs in.
        #expect(try daemon.login("ada", answer: ada.code()).verdict == .success)
        #expect(try daemon.status("ada").enrollment == "active")
    }

    @Test("a flood past the refused connections the daemon drains at once still gets a verdict on every connection, never a bare close")
    func floodPastTheDrainCapGetsVerdicts() throws {
        // 6 connections: 3 for non-root peers, 12 (twice the total) refused ones drained at once. A
        // bare close is what failmode=open takes for a daemon that is down, so a local flood must
        // never turn into one for another user's screen locker.
        let daemon = try DaemonProcess(extraConfig: "max_connections = 6\nreserved_root_connections = 3\nmax_connections_per_uid = 64")
        let flood = try Flooder(as: try TestUser.user, socket: daemon.socketPath, connections: 40)
        defer { flood.release() }
        let refused = "DENIED refused: the remaining connections are reserved for root's login dialogs"
        #expect(flood.results == Array(repeating: "RESPONSE", count: 3) + Array(repeating: refused, count: 37), "\(flood.results)")
    }

    @Test("PAM_RUSER and PAM_RHOST from a non-root peer are not counted: a local user cannot use up root's dialogs for another user or host")
    func spoofedRUserDoesNotCount() throws {
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_ruser = 1\nmax_dialogs_per_rhost = 1")
        let me = try TestUser.user
        _ = try daemon.provision(me.name)
        let bob = try daemon.provision("bob")
        // The test user's own screen-locker dialog, claiming to come from alice at 192.0.2.50.
        let claim = try FrameCodec.encode(.authStart(AuthStart(user: me.name, service: "xscreensaver", rhost: "192.0.2.50", ruser: "alice",
                                                              deadlineMillis: 10_000)))
        let spoofer = try Flooder(as: me, socket: daemon.socketPath, connections: 1, request: claim)
        defer { spoofer.release() }
        #expect(spoofer.results == ["PROMPT"], "\(spoofer.results)")
        // alice's sudo from that host (root, PAM filled the items in) still gets its dialog.
        let outcome = try LoginDialog.run(socketPath: daemon.socketPath,
                                          start: AuthStart(user: "bob", service: "sudo", rhost: "192.0.2.50", ruser: "alice")) { _, _ in bob.code() }
        #expect(outcome.verdict == .success, "\(outcome)")
    }

    // MARK: 4. Parallel attempts

    @Test("20 dialogs at once, 19 wrong codes then the right one: the 10th failure locks and the right code is refused")
    func parallelAttemptsHitTheLock() throws {
        let daemon = try DaemonProcess(extraConfig: "max_dialogs_per_user = 32\nmax_dialogs_per_rhost = 64")
        let zoe = try daemon.provision("zoe")
        let dialogs = try (0..<20).map { _ in try Self.openDialog(daemon, user: "zoe") }
        #expect(dialogs.allSatisfy { $0.1 == .promptEchoOff("Verification code: ") }, "all 20 were asked before any failure")
        let wrong = zoe.wrongCode()
        var verdicts: [VerdictCode] = []
        for (connection, _) in dialogs.dropLast() {
            try connection.send(.answer(wrong))
            var message = try connection.receive()
            while case .errorMessage = message { message = try connection.receive() }
            guard case .verdict(let code, _) = message else { throw HarnessError("no verdict: \(message)") }
            verdicts.append(code)
            connection.close()
        }
        #expect(verdicts.filter { $0 == .failure }.count == 9)
        #expect(verdicts.filter { $0 == .locked }.count == 10)
        let (last, _) = dialogs[19]
        try last.send(.answer(zoe.code()))
        var message = try last.receive()
        while case .errorMessage = message { message = try last.receive() }
        #expect(message == .verdict(.locked, reason: "locked"), "the right code while locked: \(message)")
        let status = try daemon.status("zoe")
        #expect(status.failures == 10, "failures while locked neither count nor extend the lock")
        #expect(status.lockedUntilMillis != nil)
        #expect(!(try Self.audit(daemon, user: "zoe")).contains { $0.action == "verify" && $0.outcome == "success" })
    }

    @Test("two dialogs at once: a failure's delay set by one refuses the right code the other commits within it")
    func parallelAttemptsHitTheDelay() throws {
        let daemon = try DaemonProcess(throttleDelayMillis: 5_000)
        let yan = try daemon.provision("yan")
        let (first, _) = try Self.openDialog(daemon, user: "yan")
        let (second, _) = try Self.openDialog(daemon, user: "yan")
        try first.send(.answer(yan.wrongCode()))
        #expect(try first.receive() == .verdict(.failure, reason: "wrong code"))
        try second.send(.answer(yan.code()))
        #expect(try second.receive() == .verdict(.failure, reason: "wrong code"), "refused at commit: the delay was in force")
        let records = try Self.audit(daemon, user: "yan")
        #expect(records.last?.reason == "refused at commit: a throttle delay was in force", "\(records.map { $0.reason ?? "" })")
        #expect(try daemon.status("yan").failures == 2)
    }

    // MARK: 6. Audit flooding and control characters

    @Test("client texts with terminal escapes reach neither the CLI's audit table nor the log as they are")
    func escapes() throws {
        let daemon = try DaemonProcess()
        let evil = "\u{1B}]0;owned\u{07}\u{1B}[2J\u{202E}gnp.exe"
        _ = try LoginDialog.run(socketPath: daemon.socketPath, start: AuthStart(user: "xena", service: "sshd", rhost: evil, tty: "pts/\u{1B}[31m")) { _, _ in nil }
        let (status, output) = try run([Paths.twofoldctl, "audit", "--socket", daemon.socketPath, "--user", "xena"], input: "")
        #expect(status == 0, "\(output)")
        #expect(!output.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" }, "\(output.debugDescription)")
        #expect(output.contains("\\x1B]0;owned\\x07\\x1B[2J\\u{202E}gnp.exe"), "\(output)")
        #expect(!daemon.log.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{202E}" })
        #expect(daemon.log.contains("\\x1B]0;owned"))
    }

    @Test("a log value is one token: plain ASCII as it is, else quoted with quotes and controls escaped")
    func logQuoting() {
        #expect(JournalLogHandler.quote("plain") == "plain")
        #expect(JournalLogHandler.quote("") == "\"\"")
        #expect(JournalLogHandler.quote("a b") == "\"a b\"")
        #expect(JournalLogHandler.quote("say \"hi\"\u{1B}[0m") == "\"say \\\"hi\\\"\\x1B[0m\"")
        #expect(JournalLogHandler.quote("x\nuser=root") == "\"x\\x0Auser=root\"", "no forged key=value on a new line")
    }

    @Test("refused requests from one uid are recorded a few a minute, then as one aggregate (injected clock)")
    func refusalAggregation() throws {
        let clock = ManualClock(millis: 1_800_000_000_000)
        let written = RecordedMutations()
        let auditor = RefusalAuditor(clock: clock, perMinute: 3) { written.append($0) }
        for _ in 0..<10 {
            auditor.record(AuditRecord(timeMillis: clock.nowMillis(), action: "verify", user: "ivan", peerUID: 1234, outcome: "refused", reason: "peer uid 1234 may not ask about this user"))
        }
        auditor.record(AuditRecord(timeMillis: clock.nowMillis(), action: "verify", user: "ivan", peerUID: 99, outcome: "refused", reason: "x"))
        #expect(written.records.filter { $0.peerUID == 1234 }.count == 3)
        #expect(written.records.filter { $0.peerUID == 99 }.count == 1, "another uid has its own allowance")
        auditor.flush()
        #expect(written.records.count == 4, "nothing is aggregated before the minute is over")
        clock.advance(millis: 60_000)
        auditor.flush()
        let aggregate = written.records.last
        #expect(aggregate?.reason == "7 more refused requests from uid 1234 in the minute before (not recorded one by one)")
        #expect(written.records.count == 5)
        // A new minute has a new allowance.
        auditor.record(AuditRecord(timeMillis: clock.nowMillis(), action: "verify", peerUID: 1234, outcome: "refused"))
        #expect(written.records.count == 6)
    }

    // MARK: 7. Smaller ones

    @Test("enroll at login never shows the pending secret that twofoldctl enroll started")
    func enrollAtLoginDoesNotShowACLISecret() throws {
        let daemon = try DaemonProcess(extraConfig: "require = everyone\nunenrolled = enroll")
        guard case .enrollment(let offer) = try daemon.control(.enrollBegin(user: "yuri", currentCode: nil)) else {
            throw HarnessError("enrollBegin failed")
        }
        let (connection, prompt) = try Self.openDialog(daemon, user: "yuri")
        defer { connection.close() }
        guard case .promptEchoOn(let text, _) = prompt else { Issue.record("expected the enrollment prompt, got \(prompt)"); return }
        #expect(!text.contains(Base32.grouped(offer.secretBase32)), "the CLI's pending key must not be shown to a login session")
        #expect(text.contains("type this key by hand"))
    }

    @Test("an ANSWER nobody asked for during enroll at login, and a RESULT field in an ANSWER, are protocol errors")
    func outOfTurnDuringEnrollAtLogin() throws {
        let daemon = try DaemonProcess(extraConfig: "require = everyone\nunenrolled = enroll")
        let (connection, prompt) = try Self.openDialog(daemon, user: "zack")
        defer { connection.close() }
        guard case .promptEchoOn = prompt else { Issue.record("expected the enrollment prompt, got \(prompt)"); return }
        // Two answers in one write: the second is out of turn.
        try connection.sendRaw(try FrameCodec.encode(.answer("000000")) + FrameCodec.encode(.answer("000000")))
        var message = try connection.receive()
        while case .errorMessage = message { message = try connection.receive() }
        #expect(message == .protocolError("unexpected message: no prompt is outstanding"), "\(message)")

        _ = try daemon.provision("zed")
        let (plain, _) = try Self.openDialog(daemon, user: "zed")
        defer { plain.close() }
        let resultInAnswer: [UInt8] = [1, 0x02, 0x10, 0, 6] + Array("123456".utf8) + [0x20, 0, 1, 0]
        try plain.sendRaw(be32(resultInAnswer.count) + resultInAnswer)
        guard case .protocolError(let reason) = try plain.receive() else { Issue.record("expected PROTOCOL_ERROR"); return }
        #expect(reason.contains("RESULT (0x20) is not allowed in ANSWER"))
    }
}

/// Mutations a test's commit closure was handed, in order.
final class RecordedMutations: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [StoreMutation] = []
    func append(_ mutations: [StoreMutation]) { lock.withLock { all += mutations } }
    var records: [AuditRecord] {
        lock.withLock { all.compactMap { if case .audit(let r) = $0 { r } else { nil } } }
    }
}

func be32(_ n: Int) -> [UInt8] {
    [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
}

/// A process running as a test user that opens connections to the daemon, sends `request` (a ping by
/// default) on each, reports what each got ("RESPONSE", "PROMPT", or "DENIED <reason>"), and holds
/// them all open until released.
final class Flooder {
    let results: [String]
    private let process: ChildProcess
    private var stdinWrite: Int32

    init(as account: TestUser, socket: String, connections: Int, request: [UInt8]? = nil) throws {
        let script = """
        import socket, sys
        ping = bytes.fromhex(sys.argv[3])
        held = []
        for _ in range(int(sys.argv[2])):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(sys.argv[1])
            try:
                s.sendall(ping)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused and closed before the request went out: the module reads the verdict too
            data, result = b'', None
            while result is None:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b''
                if not chunk:
                    result = 'EOF'
                    break
                data += chunk
                while len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[:4], 'big'):
                    n = int.from_bytes(data[:4], 'big'); body = data[4:4 + n]; data = data[4 + n:]
                    if body[1] == 0x31:
                        result = 'RESPONSE'
                    elif body[1] in (0x11, 0x12):
                        result = 'PROMPT'
                    elif body[1] == 0x20:
                        text = body[9:].decode() if len(body) > 9 else ''
                        result = 'DENIED ' + text
            held.append(s)
            print(result, flush=True)
        print('HOLDING', flush=True)
        sys.stdin.read()
        """
        let ping = try request ?? FrameCodec.encode(.request(Array(try JSONEncoder().encode(ControlRequest.ping))))
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        // Close-on-exec: the child must hold only its own ends, or its stdin never sees EOF.
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw HarnessError("pipe failed") }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(toChild[0]); close(fromChild[1]) }
        process = try ChildProcess(account.setpriv + ["/usr/bin/python3", "-c", script, socket, String(connections),
                                                       ping.map { String(format: "%02x", $0) }.joined()],
                                   fds: [0: toChild[0], 1: fromChild[1]])
        stdinWrite = toChild[1]
        var lines: [String] = []
        var line: [UInt8] = []
        var byte: UInt8 = 0
        let reader = fromChild[0]
        defer { close(reader) }
        while lines.last != "HOLDING" {
            var pfd = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 20_000) > 0, read(reader, &byte, 1) == 1 else {
                throw HarnessError("the flooder stopped after \(lines)")
            }
            if byte == 0x0A { lines.append(String(decoding: line, as: UTF8.self)); line = [] } else { line.append(byte) }
        }
        results = Array(lines.dropLast())
    }

    /// Closes its standard input: it exits and its connections close.
    func release() {
        if stdinWrite >= 0 { close(stdinWrite); stdinWrite = -1 }
        process.wait()
    }
}
