import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
@testable import TwofoldDaemon
import TwofoldTestSupport

/// AUTH_START's CAPABILITIES and the PAYLOAD field (docs/protocol.md, "Versions and capabilities"):
/// a client that sends no CAPABILITIES gets exactly the dialog it always had; what a client declared
/// is in its login context; a PAYLOAD nobody may send is a protocol error.
@Suite("twofoldd: client capabilities")
struct CapabilitiesTests {
    // MARK: Frames as released clients wrote them (by hand, not by today's encoder)

    /// A field: tag, u16 length, value.
    static func field(_ tag: UInt8, _ value: [UInt8]) -> [UInt8] {
        [tag, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
    }

    static func frame(type: UInt8, _ fields: [UInt8]) -> [UInt8] {
        let body = [1, type] + fields
        return be32(body.count) + body
    }

    /// AUTH_START exactly as the module of the previous release (0.10.0, before CAPABILITIES) sent
    /// it from sshd: USER, SERVICE, RHOST, TTY, then DEADLINE (its `timeout=10`), in that order.
    static func previousReleaseAuthStart(user: String) -> [UInt8] {
        frame(type: 0x01, field(0x01, Array(user.utf8)) + field(0x02, Array("sshd".utf8)) + field(0x03, Array("192.0.2.10".utf8))
              + field(0x04, Array("ssh".utf8)) + field(0x07, [0x00, 0x00, 0x27, 0x10]))
    }

    /// ANSWER as every release sent it: TEXT only.
    static func previousReleaseAnswer(_ code: String) -> [UInt8] {
        frame(type: 0x02, field(0x10, Array(code.utf8)))
    }

    /// The daemon's "login dialog" debug lines for `user` (what it recorded of each AUTH_START).
    static func loginLines(_ daemon: DaemonProcess, user: String) -> [Substring] {
        daemon.log.split(separator: "\n").filter { $0.contains("login dialog") && $0.contains(" user=\(user)") }
    }

    // MARK: The old-style client

    @Test("an old-style AUTH_START without capabilities against the new daemon: the same dialog; a right code succeeds, a wrong one fails")
    func oldStyleAuthStart() throws {
        let daemon = try DaemonProcess()
        let olga = try daemon.provision("olga")
        let start = Self.previousReleaseAuthStart(user: "olga")
        // The frame really has no CAPABILITIES: today's decoder reads it as absent.
        guard case .authStart(let decoded) = try start.dropFirst(4).withUnsafeBytes({ try FrameCodec.decodeBody($0) }) else {
            throw HarnessError("not an AUTH_START")
        }
        #expect(decoded.capabilities == nil && decoded.deadlineMillis == 10_000)

        for (answer, expected) in [(olga.wrongCode(), VerdictCode.failure), (olga.code(), .success)] {
            let connection = try daemon.connect()
            defer { connection.close() }
            try connection.sendRaw(start)
            let prompt = try connection.receive()
            // What that module always got: a text prompt, no PAYLOAD (which it would not know).
            #expect(prompt == .promptEchoOff("Verification code: ", payload: nil), "\(prompt)")
            try connection.sendRaw(Self.previousReleaseAnswer(answer))
            guard case .verdict(let verdict, _) = try connection.receive() else { throw HarnessError("no verdict") }
            #expect(verdict == expected)
        }
        // The daemon took it as a client that declared nothing: text prompts only.
        let lines = Self.loginLines(daemon, user: "olga")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("capabilities=absent") }, "\(lines)")
        // And the right code was used up there: a replay fails, as ever.
        #expect(try daemon.login("olga", answer: olga.code()).verdict == .failure)
    }

    @Test("what a client declares is logged as sent; unknown bits change nothing offered")
    func declaredCapabilitiesAreRecorded() throws {
        let daemon = try DaemonProcess()
        let cases: [(String, ClientCapabilities, String)] = [
            ("nina", [], "capabilities=none"),
            ("noel", .binaryPayload, "capabilities=BINARY_PAYLOAD"),
            ("nora", ClientCapabilities(rawValue: 0x8000_0001), "capabilities=BINARY_PAYLOAD+0x80000000"),
        ]
        for (user, declared, logged) in cases {
            let account = try daemon.provision(user)
            let outcome = try LoginDialog.run(socketPath: daemon.socketPath,
                                              start: AuthStart(user: user, service: "sshd", capabilities: declared)) { _, _ in account.code() }
            #expect(outcome.verdict == .success, "\(user): \(outcome)")
            // Every factor is text today: the prompt is the same whatever the client can carry.
            #expect(outcome.transcript.first == .promptEchoOff("Verification code: "), "\(outcome.transcript)")
            let lines = Self.loginLines(daemon, user: user)
            #expect(lines.count == 1 && lines[0].contains(logged), "\(lines)")
        }
    }

    @Test("the login context takes its capabilities from the AUTH_START on the wire: known bits only, none when absent")
    func loginContextFromTheWire() throws {
        let peer = PeerCredentials(pid: 1, uid: 0, gid: 0)
        let base = Self.field(0x01, Array("ulla".utf8)) + Self.field(0x02, Array("sshd".utf8))
        let cases: [([UInt8]?, ClientCapabilities)] = [
            (nil, []), ([0, 0, 0, 0], []), ([0, 0, 0, 1], .binaryPayload), ([0xFF, 0xFF, 0xFF, 0xFF], [.binaryPayload, .fido2]),
            ([0x80, 0, 0, 0], []),
        ]
        for (bytes, expected) in cases {
            let wire = Self.frame(type: 0x01, base + (bytes.map { Self.field(0x08, $0) } ?? []))
            var decoder = FrameDecoder()
            decoder.append(wire)
            guard case .authStart(let start)? = try decoder.next() else { throw HarnessError("not an AUTH_START") }
            let context = LoginContext(start: start, peer: peer)
            #expect(context.capabilities == expected, "\(String(describing: bytes))")
            #expect(context.capabilities.contains(.binaryPayload) == expected.contains(.binaryPayload))
            #expect(context.user == "ulla" && context.service == "sshd" && context.clientWaitMillis == LoginContext.defaultClientWaitMillis)
        }
    }

    // MARK: PAYLOAD nobody may send

    @Test("an ANSWER with a PAYLOAD is a protocol error: without BINARY_PAYLOAD, and to the code prompt, which carries none; the code is not checked")
    func payloadInAnAnswerToTheCodePrompt() throws {
        let daemon = try DaemonProcess()
        let pia = try daemon.provision("pia")
        let code = pia.code()
        let undeclared = "field PAYLOAD (0x11) needs the capability BINARY_PAYLOAD, which the client did not declare"
        let noChallenge = "unexpected message: PAYLOAD in an ANSWER to a prompt without one"
        let cases: [(start: [UInt8], reason: String)] = [
            (Self.previousReleaseAuthStart(user: "pia"), undeclared),
            (try FrameCodec.encode(.authStart(AuthStart(user: "pia", service: "sshd", capabilities: []))), undeclared),
            (try FrameCodec.encode(.authStart(AuthStart(user: "pia", service: "sshd", capabilities: .binaryPayload))), noChallenge),
        ]
        for (start, reason) in cases {
            let connection = try daemon.connect()
            defer { connection.close() }
            try connection.sendRaw(start)
            #expect(try connection.receive() == .promptEchoOff("Verification code: "))
            try connection.sendRaw(Self.frame(type: 0x02, Self.field(0x10, Array(code.utf8)) + Self.field(0x11, [0x01, 0x02])))
            #expect(try connection.receive() == .protocolError(reason))
        }
        // None of those answers was checked: the code is still unused.
        #expect(try daemon.login("pia", answer: code).verdict == .success)
    }

    @Test("an ANSWER with a PAYLOAD during enroll at login (the task-driven dialog) is a protocol error too")
    func payloadDuringEnrollAtLogin() throws {
        let daemon = try DaemonProcess(extraConfig: "require = everyone\nunenrolled = enroll")
        let cases: [(ClientCapabilities, String)] = [
            ([], "field PAYLOAD (0x11) needs the capability BINARY_PAYLOAD, which the client did not declare"),
            (.binaryPayload, "unexpected message: PAYLOAD in an ANSWER to a prompt without one"),
        ]
        for (index, (declared, reason)) in cases.enumerated() {
            let connection = try daemon.connect()
            defer { connection.close() }
            try connection.send(.authStart(AuthStart(user: "enro\(index)", service: "sshd", capabilities: declared)))
            var prompt = try connection.receive()
            while case .errorMessage = prompt { prompt = try connection.receive() }
            guard case .promptEchoOn(let text, let payload) = prompt else { throw HarnessError("expected the enrollment prompt, got \(prompt)") }
            #expect(text.contains("type this key by hand") && payload == nil)
            try connection.send(.answer("000000", payload: [0xFF]))
            #expect(try connection.receive() == .protocolError(reason))
        }
    }
}
