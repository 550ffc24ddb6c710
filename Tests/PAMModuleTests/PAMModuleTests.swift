// The real pam_twofold.so through real libpam (pam_start_confdir, via
// pam/tests/pam_driver) against fake daemons, for the dialogs and the faults a
// real twofoldd cannot be made to produce.

import Foundation
import Testing
import TwofoldTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs a fake daemon with `script`, the driver against it, and checks the fake found nothing wrong.
func dialog(options: String = "", timeout: Int = 5, before: [String] = [], stdin: [UInt8]? = nil,
                    environment: [String: String] = [:],
                    _ script: @escaping @Sendable (Connection, FakeDaemon) -> Void) throws -> DriverRun {
    try PAMBuild.require()
    let fake = try FakeDaemon(script)
    let config = try PAMConfig(socket: fake.path, timeout: timeout, options: options, before: before)
    let run = try runDriver(config, stdin: stdin, environment: environment)
    let problems = fake.finish()
    #expect(problems.isEmpty, "fake daemon: \(problems)\ndriver: \(run)")
    return run
}

@Suite("PAM module against fake daemons")
struct PAMModuleTests {

    // MARK: Dialogs

    @Test("A scripted dialog: prompt, answer, SUCCESS; AUTH_START carries the PAM items")
    func scriptedDialog() throws {
        let run = try dialog(stdin: answers("123456")) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOff, "Verification code: "))
            let answer = fake.expectAnswer(conn)
            fake.expect(answer == "123456", "ANSWER was \(String(describing: answer))")
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.dialog == ["ECHO_OFF Verification code: "], "\(run)")
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
        #expect(run.status == 0)
    }

    @Test("INFO and ERROR_MSG are relayed without answers; several prompts; escaped newlines")
    func relayedMessages() throws {
        let run = try dialog(stdin: answers("bob", "", "654321")) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.info, "Welcome\nto Twofold"))
            conn.send(textFrame(MsgType.errorMsg, "Wrong code, try again"))
            conn.send(textFrame(MsgType.promptEchoOn, "Name: "))
            fake.expect(fake.expectAnswer(conn) == "bob", "first answer")
            conn.send(textFrame(MsgType.promptEchoOff, "Press enter: "))
            fake.expect(fake.expectAnswer(conn) == "", "empty answer")
            conn.send(textFrame(MsgType.promptEchoOff, "Code (ünïcödé ✓): "))
            fake.expect(fake.expectAnswer(conn) == "654321", "third answer")
            conn.send(verdictFrame(Verdict.success, text: "accepted for the log"))
        }
        #expect(run.dialog == [
            "INFO Welcome\\nto Twofold",
            "ERROR Wrong code, try again",
            "ECHO_ON Name: ",
            "ECHO_OFF Press enter: ",
            "ECHO_OFF Code (ünïcödé ✓): ",
        ], "\(run)")
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    struct VerdictCase: Sendable, CustomTestStringConvertible {
        let code: UInt8
        let options: String
        let expected: String
        var testDescription: String { "verdict \(code) \(options) → \(expected)" }
    }

    @Test("Each verdict maps to its PAM code", arguments: [
        VerdictCase(code: Verdict.success, options: "", expected: "0 PAM_SUCCESS"),
        VerdictCase(code: Verdict.failure, options: "", expected: "7 PAM_AUTH_ERR"),
        VerdictCase(code: Verdict.locked, options: "", expected: "11 PAM_MAXTRIES"),
        VerdictCase(code: Verdict.ignore, options: "", expected: "25 PAM_IGNORE"),
        // UNAVAILABLE after other messages: the dialog had started, so it fails closed
        // whatever failmode (as the first message it is "unavailable": HardeningTests).
        VerdictCase(code: Verdict.unavailable, options: "", expected: "7 PAM_AUTH_ERR"),
        VerdictCase(code: Verdict.badRequest, options: "", expected: "3 PAM_SERVICE_ERR"),
        VerdictCase(code: Verdict.denied, options: "", expected: "7 PAM_AUTH_ERR"),
        // failmode=open changes only "unavailable", never a decision.
        VerdictCase(code: Verdict.unavailable, options: "failmode=open", expected: "7 PAM_AUTH_ERR"),
        VerdictCase(code: Verdict.failure, options: "failmode=open", expected: "7 PAM_AUTH_ERR"),
        VerdictCase(code: Verdict.denied, options: "failmode=open", expected: "7 PAM_AUTH_ERR"),
        VerdictCase(code: Verdict.locked, options: "failmode=open", expected: "11 PAM_MAXTRIES"),
        VerdictCase(code: Verdict.badRequest, options: "failmode=open", expected: "3 PAM_SERVICE_ERR"),
    ])
    func verdicts(_ c: VerdictCase) throws {
        let run = try dialog(options: c.options, stdin: answers("000000")) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.info, "info"))
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            _ = fake.expectAnswer(conn)
            conn.send(verdictFrame(c.code, text: "reason"))
        }
        #expect(run.dialog == ["INFO info", "ECHO_OFF Code: "], "\(run)")
        #expect(run.result == c.expected, "\(run)")
    }

    @Test("A verdict may come without any prompt")
    func verdictWithoutPrompt() throws {
        let run = try dialog { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(verdictFrame(Verdict.ignore))
        }
        #expect(run.dialog.isEmpty && run.result == "25 PAM_IGNORE", "\(run)")
    }

    @Test("A frame of exactly 65,536 bytes is accepted and unknown tags are skipped")
    func largestFrameAndUnknownTags() throws {
        let run = try dialog { conn, fake in
            fake.expectAuthStart(conn)
            // 2 (version, type) + 5 (TEXT "hi") + 3 + 65,526 (unknown tag 0x7E) = 65,536.
            let big = frame(MsgType.info, field(Tag.text, "hi") + field(0x7E, [UInt8](repeating: 0, count: 65_526)))
            fake.expect(big.count == 4 + 65_536, "test frame size \(big.count)")
            conn.send(big)
            conn.send(frame(MsgType.verdict, field(0x55, "later versions") + field(Tag.result, [Verdict.success])))
        }
        #expect(run.dialog == ["INFO hi"], "\(run)")
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    // MARK: Daemon down, hung, closing

    @Test("No socket file → PAM_AUTHINFO_UNAVAIL; failmode=open → PAM_IGNORE", arguments: ["", "failmode=open"])
    func noSocketFile(options: String) throws {
        let path = try temporarySocketPath()
        defer { removeSocketPath(path) }
        let config = try PAMConfig(socket: path, options: options)
        let run = try runDriver(config)
        #expect(run.result == (options.isEmpty ? "9 PAM_AUTHINFO_UNAVAIL" : "25 PAM_IGNORE"), "\(run)")
        #expect(run.stderr.contains("No such file or directory"), "\(run)")
        if !options.isEmpty {
            #expect(run.stderr.contains("failmode=open: NOT checking the second factor"), "\(run)")
        }
    }

    @Test("A socket file nobody listens on → PAM_AUTHINFO_UNAVAIL; failmode=open → PAM_IGNORE",
          arguments: ["", "failmode=open"])
    func staleSocketFile(options: String) throws {
        let path = try temporarySocketPath()
        defer { removeSocketPath(path) }
        close(try boundSocket(path, backlog: nil))
        let config = try PAMConfig(socket: path, options: options)
        let run = try runDriver(config)
        #expect(run.result == (options.isEmpty ? "9 PAM_AUTHINFO_UNAVAIL" : "25 PAM_IGNORE"), "\(run)")
        #expect(run.stderr.contains("Connection refused"), "\(run)")
    }

    @Test("A daemon that accepts and never answers: the timeout fires → PAM_AUTHINFO_UNAVAIL")
    func hungDaemon() throws {
        let run = try dialog(timeout: 1) { conn, fake in
            fake.expectAuthStart(conn)
            fake.expect(conn.closedWithoutData(), "the module did not close after its timeout")
        }
        #expect(run.result == "9 PAM_AUTHINFO_UNAVAIL", "\(run)")
        #expect(run.stderr.contains("timed out"), "\(run)")
        #expect(run.seconds < 8, "took \(run.seconds) s with timeout=1")
    }

    @Test("A daemon that hangs after the answer: the timeout fires → PAM_AUTH_ERR, even with failmode=open")
    func hungAfterAnswer() throws {
        let run = try dialog(options: "failmode=open", timeout: 1, stdin: answers("111111")) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            _ = fake.expectAnswer(conn)
            fake.expect(conn.closedWithoutData(), "the module did not close after its timeout")
        }
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
        #expect(run.stderr.contains("timed out"), "\(run)")
        #expect(run.stderr.contains("dialog started: failing closed whatever failmode"), "\(run)")
        #expect(run.seconds < 8, "took \(run.seconds) s with timeout=1")
    }

    @Test("A daemon that never accepts, backlog full: connect times out → PAM_AUTHINFO_UNAVAIL")
    func backlogFull() throws {
        let path = try temporarySocketPath()
        let listener = try boundSocket(path, backlog: 0)
        var fillers: [Int32] = []
        defer {
            fillers.forEach { close($0) }
            close(listener)
            removeSocketPath(path)
        }
        // Fill the listen queue until a non-blocking connect would wait.
        var sa = makeUnixAddress(path)
        for _ in 0..<64 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let r = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            let err = errno
            if r != 0 {
                close(fd)
                #expect(err == EAGAIN, "filler connect: errno \(err)")
                break
            }
            fillers.append(fd)
        }
        let config = try PAMConfig(socket: path, timeout: 1)
        let run = try runDriver(config)
        #expect(run.result == "9 PAM_AUTHINFO_UNAVAIL", "\(run)")
        #expect(run.stderr.contains("timed out"), "\(run)")
        #expect(run.seconds < 8, "took \(run.seconds) s with timeout=1")
    }

    struct CloseCase: Sendable, CustomTestStringConvertible {
        let name: String
        let answersFirst: Bool
        let sendBeforeClose: [UInt8]
        let expected: String
        var testDescription: String { "\(name) → \(expected)" }
    }

    // Before the first complete frame the daemon is "unavailable"; after it, the dialog had started.
    @Test("The daemon closes before the verdict: unavailable before its first message, PAM_AUTH_ERR after", arguments: [
        CloseCase(name: "right after AUTH_START", answersFirst: false, sendBeforeClose: [], expected: "9 PAM_AUTHINFO_UNAVAIL"),
        CloseCase(name: "inside the first frame's length word", answersFirst: false, sendBeforeClose: [0, 0],
                  expected: "9 PAM_AUTHINFO_UNAVAIL"),
        CloseCase(name: "inside the first frame's body", answersFirst: false,
                  sendBeforeClose: Array(verdictFrame(Verdict.success).prefix(7)), expected: "9 PAM_AUTHINFO_UNAVAIL"),
        CloseCase(name: "after the prompt and its answer", answersFirst: true, sendBeforeClose: [], expected: "7 PAM_AUTH_ERR"),
        CloseCase(name: "inside a frame's length word", answersFirst: true, sendBeforeClose: [0, 0], expected: "7 PAM_AUTH_ERR"),
        CloseCase(name: "inside a frame body", answersFirst: true,
                  sendBeforeClose: Array(verdictFrame(Verdict.success).prefix(7)), expected: "7 PAM_AUTH_ERR"),
    ])
    func closesEarly(_ c: CloseCase) throws {
        let run = try dialog(stdin: answers("222222")) { conn, fake in
            fake.expectAuthStart(conn)
            if c.answersFirst {
                conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
                fake.expect(fake.expectAnswer(conn) == "222222", "answer")
            }
            conn.send(c.sendBeforeClose)
            shutdown(conn.fd, Int32(SHUT_WR))
            fake.expect(conn.closedWithoutData(), "the module sent something after the daemon closed")
        }
        #expect(run.result == c.expected, "\(run)")
        #expect(run.stderr.contains("closed"), "\(run)")
    }

    // MARK: Invalid frames

    struct BadFrame: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        let reason: String
        var options = ""  // "nofido2": the module declares nothing
        var testDescription: String { name }
    }

    static let badFrames: [BadFrame] = {
        let text = Tag.text
        var cases: [BadFrame] = [
            BadFrame(name: "garbage text", bytes: Array("HELLO, I am not a frame\r\n".utf8), reason: "frame length"),
            BadFrame(name: "a frame announcing 1 GiB", bytes: be32(1 << 30) + [1, MsgType.info], reason: "frame length"),
            BadFrame(name: "a frame announcing 65,537 bytes", bytes: be32(65_537) + [1, MsgType.info], reason: "frame length"),
            BadFrame(name: "length 0", bytes: be32(0), reason: "frame length"),
            BadFrame(name: "length 1", bytes: be32(1) + [1], reason: "frame length"),
            BadFrame(name: "wrong version 2", bytes: frame(MsgType.info, field(text, "hi"), version: 2), reason: "version"),
            BadFrame(name: "wrong version 0", bytes: frame(MsgType.verdict, field(Tag.result, [0]), version: 0), reason: "version"),
            BadFrame(name: "a field overrunning the frame",
                     bytes: frame(MsgType.info, field(text, Array("short".utf8), length: 100)), reason: "past the end"),
            BadFrame(name: "a truncated field header", bytes: frame(MsgType.info, field(text, "hi") + [text, 0]),
                     reason: "truncated field"),
            BadFrame(name: "duplicate TEXT", bytes: frame(MsgType.promptEchoOff, field(text, "a") + field(text, "b")),
                     reason: "duplicate"),
            BadFrame(name: "duplicate RESULT",
                     bytes: frame(MsgType.verdict, field(Tag.result, [0]) + field(Tag.result, [0])), reason: "duplicate"),
            BadFrame(name: "TEXT over its 8,192-byte bound",
                     bytes: frame(MsgType.info, field(text, [UInt8](repeating: 0x61, count: 8_193))), reason: "bound"),
            BadFrame(name: "a known tag over its bound in a prompt",
                     bytes: frame(MsgType.promptEchoOff, field(text, "Code: ") + field(Tag.service, [UInt8](repeating: 0x61, count: 65))),
                     reason: "bound"),
            BadFrame(name: "TEXT with a NUL", bytes: frame(MsgType.promptEchoOff, field(text, [0x61, 0, 0x62])), reason: "UTF-8"),
            BadFrame(name: "TEXT not UTF-8", bytes: frame(MsgType.info, field(text, [0xFF, 0xFE])), reason: "UTF-8"),
            BadFrame(name: "TEXT with an overlong encoding", bytes: frame(MsgType.info, field(text, [0xC0, 0xAF])), reason: "UTF-8"),
            BadFrame(name: "TEXT with a surrogate", bytes: frame(MsgType.info, field(text, [0xED, 0xA0, 0x80])), reason: "UTF-8"),
            BadFrame(name: "TEXT with a cut sequence", bytes: frame(MsgType.info, field(text, [0x61, 0xE2, 0x9C])), reason: "UTF-8"),
            BadFrame(name: "an unknown message type", bytes: frame(0x55, field(text, "?")), reason: "message type"),
            BadFrame(name: "AUTH_START sent to the module", bytes: frame(MsgType.authStart, field(Tag.user, "root")),
                     reason: "message type"),
            BadFrame(name: "ANSWER sent to the module", bytes: frame(MsgType.answer, field(text, "x")), reason: "message type"),
            BadFrame(name: "a control RESPONSE", bytes: frame(0x31, field(0x30, "{}")), reason: "message type"),
            BadFrame(name: "a prompt without TEXT", bytes: frame(MsgType.promptEchoOff), reason: "without TEXT"),
            BadFrame(name: "INFO without TEXT", bytes: frame(MsgType.info, field(0x7E, "x")), reason: "without TEXT"),
            BadFrame(name: "VERDICT without RESULT", bytes: frame(MsgType.verdict, field(text, "ok")), reason: "without RESULT"),
            BadFrame(name: "RESULT of two bytes", bytes: frame(MsgType.verdict, field(Tag.result, [0, 0])), reason: "bound"),
            BadFrame(name: "RESULT of zero bytes", bytes: frame(MsgType.verdict, field(Tag.result, [])), reason: "one byte"),
            BadFrame(name: "an unknown verdict code 7", bytes: verdictFrame(7), reason: "verdict code"),
            BadFrame(name: "an unknown verdict code 255", bytes: verdictFrame(255), reason: "verdict code"),
            BadFrame(name: "PROTOCOL_ERROR", bytes: textFrame(MsgType.protocolError, "you said something odd"),
                     reason: "PROTOCOL_ERROR from the daemon: you said something odd"),
        ]
        cases.append(BadFrame(name: "PROTOCOL_ERROR without a reason", bytes: frame(MsgType.protocolError),
                              reason: "PROTOCOL_ERROR"))
        // A known tag where the message type does not list it.
        let notListed = "does not list"
        cases += [
            BadFrame(name: "RESULT inside a prompt",
                     bytes: frame(MsgType.promptEchoOff, field(text, "Code: ") + field(Tag.result, [0])), reason: notListed),
            BadFrame(name: "RESULT inside INFO", bytes: frame(MsgType.info, field(Tag.result, [0]) + field(text, "hi")),
                     reason: notListed),
            BadFrame(name: "USER inside a prompt",
                     bytes: frame(MsgType.promptEchoOn, field(text, "Code: ") + field(Tag.user, "root")), reason: notListed),
            BadFrame(name: "DEADLINE inside a VERDICT",
                     bytes: frame(MsgType.verdict, field(Tag.result, [0]) + field(Tag.deadline, be32(1000))), reason: notListed),
            BadFrame(name: "DEADLINE over its 4-byte bound in a VERDICT",
                     bytes: frame(MsgType.verdict, field(Tag.result, [0]) + field(Tag.deadline, [0, 0, 0, 0, 0])), reason: "bound"),
            BadFrame(name: "PASSWORD inside PROTOCOL_ERROR",
                     bytes: frame(MsgType.protocolError, field(text, "x") + field(Tag.password, "pw")), reason: notListed),
            BadFrame(name: "CAPABILITIES inside a prompt",
                     bytes: frame(MsgType.promptEchoOff, field(text, "Code: ") + field(Tag.capabilities, [0, 0, 0, 1])), reason: notListed),
        ]
        // PAYLOAD with nofido2 (and in a module built without libfido2): no BINARY_PAYLOAD declared,
        // so a daemon must not send one anywhere (a module that skipped it would show the prompt and
        // lose the challenge).
        let undeclared = "PAYLOAD, which needs BINARY_PAYLOAD, a capability this module did not declare"
        cases += [
            BadFrame(name: "nofido2: PAYLOAD in a prompt",
                     bytes: frame(MsgType.promptEchoOff, field(text, "Touch your key: ") + field(Tag.payload, [0, 1, 2])), reason: undeclared,
                     options: "nofido2"),
            BadFrame(name: "nofido2: an empty PAYLOAD in an echo-on prompt",
                     bytes: frame(MsgType.promptEchoOn, field(Tag.payload, []) + field(text, "Key: ")), reason: undeclared,
                     options: "nofido2"),
            BadFrame(name: "nofido2: PAYLOAD in INFO", bytes: frame(MsgType.info, field(text, "hi") + field(Tag.payload, [0xFF])),
                     reason: undeclared, options: "nofido2"),
            BadFrame(name: "PAYLOAD over its 8,192-byte bound in a prompt",
                     bytes: frame(MsgType.promptEchoOff, field(text, "Code: ") + field(Tag.payload, [UInt8](repeating: 0, count: 8_193))),
                     reason: "bound"),
        ]
        return cases
    }()

    @Test("An invalid first frame or PROTOCOL_ERROR → PAM_AUTH_ERR, even with failmode=open (the daemon answered)",
          arguments: badFrames)
    func invalidFrame(_ bad: BadFrame) throws {
        // The fake keeps the connection open: the module must give up on the
        // frame itself, not by running into its timeout or an EOF.
        let run = try dialog(options: "failmode=open \(bad.options)", timeout: 30) { conn, fake in
            fake.expectAuthStart(conn, capabilities: bad.options.contains("nofido2") ? 0 : nil)
            conn.send(bad.bytes)
            fake.expect(conn.closedWithoutData(), "the module answered an invalid frame")
        }
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
        #expect(run.dialog.isEmpty, "\(run)")
        #expect(run.stderr.contains("dialog started: failing closed whatever failmode"), "\(run)")
        #expect(!run.stderr.contains("twofoldd unavailable"), "\(run)")
        #expect(run.stderr.contains(bad.reason), "expected reason \"\(bad.reason)\": \(run)")
        #expect(!run.stderr.contains("timed out"), "\(run)")
    }

    @Test("An invalid frame after a valid prompt, with failmode=open → PAM_AUTH_ERR")
    func invalidFrameFailOpen() throws {
        let run = try dialog(options: "failmode=open", stdin: answers("333333")) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            _ = fake.expectAnswer(conn)
            conn.send(Array("garbage!".utf8))
            fake.expect(conn.closedWithoutData(), "the module answered garbage")
        }
        #expect(run.dialog == ["ECHO_OFF Code: "], "\(run)")
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
        #expect(!run.stderr.contains("NOT checking the second factor"), "\(run)")
    }

    // MARK: Conversation

    @Test("Conversation failure (stdin closed) → PAM_CONV_ERR; the daemon sees a close without ANSWER")
    func conversationFailure() throws {
        let run = try dialog(stdin: nil) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.info, "hello"))
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(conn.closedWithoutData(), "the module sent an ANSWER after a failed conversation")
        }
        #expect(run.dialog == ["INFO hello", "ECHO_OFF Code: "], "\(run)")
        #expect(run.result == "19 PAM_CONV_ERR", "\(run)")
    }

    struct Input: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        var testDescription: String { name }
    }

    @Test("An answer that cannot be sent → PAM_AUTH_ERR without sending it, never fail-open", arguments: [
        Input(name: "8,193 bytes", bytes: Array(String(repeating: "9", count: 8_193).utf8) + [0x0A]),
        Input(name: "not UTF-8", bytes: [0x31, 0x32, 0xFF, 0x33, 0x0A]),
    ])
    func unsendableAnswer(_ input: Input) throws {
        let run = try dialog(options: "failmode=open", stdin: input.bytes) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(conn.closedWithoutData(), "the module sent an unsendable answer")
        }
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
    }

    @Test("An answer of exactly 8,192 bytes is sent whole")
    func longestAnswer() throws {
        let long = String(repeating: "7", count: 8_192)
        let run = try dialog(stdin: answers(long)) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOn, "Recovery: "))
            fake.expect(fake.expectAnswer(conn) == long, "long answer changed")
            conn.send(verdictFrame(Verdict.failure))
        }
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
    }

    // MARK: Options

    @Test("Unknown or malformed options are logged → PAM_SERVICE_ERR, and the daemon is not asked",
          arguments: ["bogus", "timeout=abc", "timeout=0", "timeout=", "timeout=-5", "timeout=99999",
                      "failmode=maybe", "socket=relative.sock", "debug=1",
                      "dialog_timeout=0", "dialog_timeout=86401", "dialog_timeout=x", "daemon_user=",
                      "daemon_user=no-such-account-twofold"])
    func badOption(_ option: String) throws {
        // The socket does not exist: were the option ignored, the result would be 9.
        let path = try temporarySocketPath()
        defer { removeSocketPath(path) }
        let config = try PAMConfig(socket: path, rawOptions: "socket=\(path) \(option)")
        let run = try runDriver(config)
        #expect(run.result == "3 PAM_SERVICE_ERR", "\(run)")
        #expect(run.stderr.contains("\"\(option)\""), "the option is not logged: \(run)")
        #expect(!run.stderr.contains("twofoldd unavailable"), "\(run)")
    }

    @Test("A socket path too long for sockaddr_un → PAM_SERVICE_ERR")
    func socketPathTooLong() throws {
        let path = "/tmp/" + String(repeating: "s", count: 120)
        let config = try PAMConfig(socket: path)
        let run = try runDriver(config)
        #expect(run.result == "3 PAM_SERVICE_ERR", "\(run)")
    }

    @Test("forward_password sends PAM_AUTHTOK as PASSWORD; debug logs steps but no secret")
    func forwardPassword() throws {
        let setItems = try #require(Build.setItemsModule, "pam_wrapper's pam_set_items.so is not installed")
        let run = try dialog(options: "forward_password debug", before: ["auth optional \(setItems)"],
                             stdin: answers("424242"),
                             environment: ["TWOFOLD_TEST_AUTHTOK": "s3cret-pw", "TWOFOLD_TEST_RUSER": "bob"]) { conn, fake in
            fake.expectAuthStart(conn, password: "s3cret-pw", ruser: "bob")
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(fake.expectAnswer(conn) == "424242", "answer")
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
        #expect(run.stderr.contains("sent AUTH_START"), "debug does not log the steps: \(run)")
        #expect(run.stderr.contains("received PROMPT_ECHO_OFF"), "\(run)")
        #expect(run.stderr.contains("sent ANSWER"), "\(run)")
        #expect(!run.stderr.contains("s3cret-pw"), "the password was logged: \(run)")
        #expect(!run.stderr.contains("424242"), "the answer was logged: \(run)")
    }

    @Test("Without forward_password no PASSWORD is sent, even when PAM_AUTHTOK is set")
    func noForwardPassword() throws {
        let setItems = try #require(Build.setItemsModule, "pam_wrapper's pam_set_items.so is not installed")
        let run = try dialog(before: ["auth optional \(setItems)"],
                             environment: ["TWOFOLD_TEST_AUTHTOK": "s3cret-pw"]) { conn, fake in
            fake.expectAuthStart(conn, password: nil)
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    @Test("forward_password with no PAM_AUTHTOK set sends no PASSWORD")
    func forwardPasswordWithoutAuthtok() throws {
        let run = try dialog(options: "forward_password") { conn, fake in
            fake.expectAuthStart(conn, password: nil)
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    // MARK: Items the module cannot send faithfully

    @Test("A user name over 256 bytes is refused locally → PAM_USER_UNKNOWN, even with failmode=open")
    func userTooLong() throws {
        let config = try PAMConfig(socket: "/nonexistent/twofold.sock", options: "failmode=open")
        let run = try runDriver(config, user: String(repeating: "u", count: 257))
        #expect(run.result == "10 PAM_USER_UNKNOWN", "\(run)")
    }

    // MARK: Stacks as in pam/examples

    struct StackCase: Sendable, CustomTestStringConvertible {
        let verdict: UInt8
        let withPermit: Bool
        let expected: String
        var testDescription: String { "verdict \(verdict)\(withPermit ? " + optional pam_permit" : " alone") → \(expected)" }
    }

    @Test("auth required pam_twofold.so: IGNORE alone fails the stack; the optional pam_permit line lets it pass",
          arguments: [
              StackCase(verdict: Verdict.ignore, withPermit: false, expected: "6 PAM_PERM_DENIED"),
              StackCase(verdict: Verdict.ignore, withPermit: true, expected: "0 PAM_SUCCESS"),
              StackCase(verdict: Verdict.success, withPermit: true, expected: "0 PAM_SUCCESS"),
              StackCase(verdict: Verdict.failure, withPermit: true, expected: "7 PAM_AUTH_ERR"),
              StackCase(verdict: Verdict.locked, withPermit: true, expected: "11 PAM_MAXTRIES"),
          ])
    func requiredStack(_ c: StackCase) throws {
        try PAMBuild.require()
        let fake = try FakeDaemon { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(verdictFrame(c.verdict))
        }
        let config = try PAMConfig(socket: fake.path, control: "required",
                                   after: c.withPermit ? ["auth optional pam_permit.so"] : [])
        let run = try runDriver(config)
        let problems = fake.finish()
        #expect(problems.isEmpty, "\(problems)")
        #expect(run.stackResult == c.expected, "\(run)")
    }

    /// The auth lines of pam/examples/sshd, with the module's path and test options filled in.
    static func exampleSSHDAuthLines(socket: String) throws -> [String] {
        let text = try String(contentsOfFile: TestPaths.root + "/pam/examples/sshd", encoding: .utf8)
        return text.split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix("auth") }
            .map { $0.replacingOccurrences(of: "pam_twofold.so", with: "\(PAMBuild.module) socket=\(socket) timeout=5") }
    }

    @Test("The auth lines of pam/examples/sshd: IGNORE lets the user in, a failure or a dead daemon does not",
          arguments: [Verdict.ignore, Verdict.success, Verdict.failure, Verdict.denied])
    func sshdExampleStack(_ verdict: UInt8) throws {
        try PAMBuild.require()
        let fake = try FakeDaemon { conn, fake in
            fake.expectAuthStart(conn, capabilities: 0)  // nofido2: the key is on the ssh client
            conn.send(verdictFrame(verdict))
        }
        let lines = try Self.exampleSSHDAuthLines(socket: fake.path)
        #expect(lines.count == 2, "\(lines)")
        let config = try PAMConfig(lines: lines)
        let run = try runDriver(config)
        #expect(fake.finish().isEmpty)
        let expected = verdict == Verdict.ignore || verdict == Verdict.success ? "0 PAM_SUCCESS" : "7 PAM_AUTH_ERR"
        #expect(run.stackResult == expected, "\(run)")
    }

    @Test("The auth lines of pam/examples/sshd with the daemon down: PAM_AUTHINFO_UNAVAIL")
    func sshdExampleStackDaemonDown() throws {
        try PAMBuild.require()
        let path = try temporarySocketPath()
        defer { removeSocketPath(path) }
        let config = try PAMConfig(lines: try Self.exampleSSHDAuthLines(socket: path))
        let run = try runDriver(config)
        #expect(run.stackResult == "9 PAM_AUTHINFO_UNAVAIL", "\(run)")
    }

    // MARK: The shared object

    @Test("make -C pam check-exports: only pam_sm_* exported, only libpam and libc needed")
    func checkExports() throws {
        try PAMBuild.require()
        let (status, output) = try PAMBuild.make("check-exports")
        #expect(status == 0, "\(output)")
        #expect(output.contains("check-exports: OK"), "\(output)")
    }
}
