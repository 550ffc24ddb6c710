import Foundation
import Glibc
import Testing
import TwofoldClient
@testable import TwofoldProtocol

private struct Ping: Codable, Equatable, Sendable { var nonce: Int }
private struct Pong: Codable, Equatable, Sendable { var nonce: Int; var note: String }

@Suite("TwofoldConnection and LoginDialog against an in-test server")
struct ClientTests {
    @Test("request/response, several on one connection")
    func requestResponse() throws {
        let server = try TestServer { connection in
            while let message = try connection.receive() {
                let ping = try ControlCodec.decode(Ping.self, from: message)
                try connection.send(ControlCodec.encodeResponse(Pong(nonce: ping.nonce, note: "pong")))
            }
        }
        let connection = try TwofoldConnection(socketPath: server.path, timeoutSeconds: 10)
        #expect(connection.fileDescriptor >= 0)
        for nonce in 1...3 {
            #expect(try connection.request(Ping(nonce: nonce), as: Pong.self) == Pong(nonce: nonce, note: "pong"))
        }
        connection.close()
        #expect(connection.fileDescriptor == -1)
        #expect(throws: ClientError.notConnected) { try connection.send(.info("x")) }
        #expect(server.finish() == [])
    }

    @Test("a RESPONSE of 3 MiB arrives whole")
    func largeResponse() throws {
        let json = largeJSON(3 << 20)
        let server = try TestServer { connection in
            _ = try connection.receive()
            try connection.send(.response(json))
            connection.drainUntilEOF()
        }
        let connection = try TwofoldConnection(socketPath: server.path)
        try connection.send(ControlCodec.encodeRequest(Ping(nonce: 1)))
        #expect(try connection.receive() == .response(json))
        connection.close()
        #expect(server.finish() == [])
    }

    @Test("PROTOCOL_ERROR, a wrong message and undecodable JSON in answer to a request")
    func requestErrors() throws {
        let replies: [Message] = [.protocolError("frame too large"), .verdict(.success, reason: nil), .response(Array("[]".utf8))]
        let expected: [ClientError.Kind] = [
            .daemonProtocolError("frame too large"),
            .protocol(.unexpectedMessage("expected RESPONSE, got VERDICT")),
            .invalidResponse("invalid JSON document: expected Dictionary<String, Any> at the top level"),
        ]
        for (reply, kind) in zip(replies, expected) {
            let server = try TestServer { connection in
                _ = try connection.receive()
                try connection.send(reply)
                connection.drainUntilEOF()
            }
            let connection = try TwofoldConnection(socketPath: server.path)
            do {
                _ = try connection.request(Ping(nonce: 1), as: Pong.self)
                Issue.record("request succeeded on \(reply)")
            } catch let error as ClientError {
                if case .invalidResponse = kind, case .invalidResponse = error.kind {
                    // The exact DecodingError wording belongs to Foundation.
                } else {
                    #expect(error.kind == kind)
                }
            }
            connection.close()
            #expect(server.finish() == [])
        }
    }

    @Test("EOF from the daemon throws closedByDaemon")
    func eof() throws {
        let server = try TestServer { _ in }  // accepts and closes at once
        let connection = try TwofoldConnection(socketPath: server.path)
        #expect(throws: ClientError.closedByDaemon) { try connection.receive() }
        #expect(connection.fileDescriptor == -1)
        #expect(server.finish() == [])
    }

    @Test("EOF in the middle of a frame throws closedByDaemon")
    func eofMidFrame() throws {
        let server = try TestServer { connection in
            connection.sendRaw(Array(try FrameCodec.encode(.info("half of this")).prefix(7)))
        }
        let connection = try TwofoldConnection(socketPath: server.path)
        #expect(throws: ClientError.closedByDaemon) { try connection.receive() }
        #expect(server.finish() == [])
    }

    @Test("a bad frame from the daemon throws protocol(_) and closes")
    func badFrame() throws {
        let server = try TestServer { connection in
            connection.sendRaw(frame(body(type: 0x13, version: 9, [RawField(0x10, "x")])))
            connection.drainUntilEOF()
        }
        let connection = try TwofoldConnection(socketPath: server.path)
        #expect(throws: ClientError.protocol(.badVersion(9))) { try connection.receive() }
        #expect(connection.fileDescriptor == -1)
        #expect(server.finish() == [])
    }

    @Test("a silent daemon makes receive time out")
    func silentServer() throws {
        let server = try TestServer { connection in connection.drainUntilEOF() }
        let connection = try TwofoldConnection(socketPath: server.path, timeoutSeconds: 0.3)
        let started = Date()
        #expect(throws: ClientError.timedOut) { try connection.receive() }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed < 10, "bounded generously")
        #expect(connection.fileDescriptor == -1)  // closed, so the server sees EOF
        #expect(server.finish() == [])
    }

    @Test("connecting to a missing path is daemonUnreachable with a clear message")
    func missingPath() {
        let path = "/tmp/twofold-no-such-dir-\(UInt32.random(in: 0 ... .max))/twofold.sock"
        do {
            _ = try TwofoldConnection(socketPath: path)
            Issue.record("connected to \(path)")
        } catch let error as ClientError {
            #expect(error == ClientError.daemonUnreachable(path: path, errno: ENOENT))
            #expect(error.description == "cannot reach twofoldd at \(path): No such file or directory")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a socket nobody listens on is daemonUnreachable (connection refused)")
    func refused() throws {
        let path = "/tmp/twofold-proto-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).sock"
        let fd = try TestServer.listen(at: path)
        Glibc.close(fd)  // the socket file stays, with nobody behind it
        defer { unlink(path) }
        #expect(throws: ClientError.daemonUnreachable(path: path, errno: ECONNREFUSED)) {
            try TwofoldConnection(socketPath: path)
        }
    }

    @Test("a socket path longer than sun_path is refused before connecting")
    func pathTooLong() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        #expect(throws: ClientError.daemonUnreachable(path: path, errno: ENAMETOOLONG)) {
            try TwofoldConnection(socketPath: path)
        }
    }

    @Test("a whole login dialog: info, prompts, answers, error, verdict")
    func loginDialog() throws {
        // The client says how long it waits (its timeout, 10 s by default) and what it can carry
        // beyond text (nothing: an empty CAPABILITIES), as the module does.
        let start = AuthStart(user: "alice", service: "sshd", rhost: "192.0.2.1", tty: "ssh", password: "pw", deadlineMillis: 10_000)
        var sent = start
        sent.capabilities = []
        let server = try TestServer { [sent] connection in
            guard try connection.receive() == .authStart(sent) else { throw ClientError.protocol(.unexpectedMessage("start")) }
            try connection.send(.info("Two-factor authentication"))
            try connection.send(.promptEchoOff("Verification code: "))
            guard try connection.receive() == .answer("111111") else { throw ClientError.protocol(.unexpectedMessage("answer 1")) }
            try connection.send(.errorMessage("Wrong code."))
            try connection.send(.promptEchoOn("Recovery code: "))
            guard try connection.receive() == .answer("ABCD-EFGH") else { throw ClientError.protocol(.unexpectedMessage("answer 2")) }
            try connection.send(.verdict(.success, reason: "recovery code"))
            connection.drainUntilEOF()
        }
        var asked: [String] = []
        let outcome = try LoginDialog.run(socketPath: server.path, start: start) { prompt, echo in
            asked.append("\(prompt)|\(echo)")
            return echo ? "ABCD-EFGH" : "111111"
        }
        #expect(asked == ["Verification code: |false", "Recovery code: |true"])
        #expect(outcome.verdict == .success)
        #expect(outcome.reason == "recovery code")
        #expect(outcome.shownTexts == ["Two-factor authentication", "Wrong code."])
        #expect(outcome.prompts == ["Verification code: ", "Recovery code: "])
        #expect(outcome.transcript.count == 5)
        #expect(outcome.transcript.last == .verdict(.success, reason: "recovery code"))
        #expect(server.finish() == [])
    }

    @Test("a nil answer closes the dialog without answering")
    func abandoned() throws {
        let server = try TestServer { connection in
            _ = try connection.receive()
            try connection.send(.promptEchoOff("Verification code: "))
            if let message = try connection.receive() { throw ClientError.protocol(.unexpectedMessage("got \(message.type.name), expected EOF")) }
        }
        #expect(throws: ClientError.conversationAborted) {
            try LoginDialog.run(socketPath: server.path, start: AuthStart(user: "u", service: "s")) { _, _ in nil }
        }
        #expect(server.finish() == [])
    }

    @Test("dialog failures: PROTOCOL_ERROR, EOF before the verdict, a message a module never receives")
    func dialogFailures() throws {
        let cases: [(Message?, ClientError)] = [
            (.protocolError("unexpected ANSWER"), ClientError(.daemonProtocolError("unexpected ANSWER"))),
            (nil, .closedByDaemon),
            (.response(Array("{}".utf8)), .protocol(.unexpectedMessage("RESPONSE in a login dialog"))),
        ]
        for (reply, expected) in cases {
            let server = try TestServer { connection in
                _ = try connection.receive()
                if let reply { try connection.send(reply); connection.drainUntilEOF() }
            }
            #expect(throws: expected) {
                try LoginDialog.run(socketPath: server.path, start: AuthStart(user: "u", service: "s")) { _, _ in "1" }
            }
            #expect(server.finish() == [])
        }
    }

    @Test("a prompt with a PAYLOAD is refused: the client declared no BINARY_PAYLOAD (or answers text only)")
    func promptWithPayload() throws {
        let cases: [(ClientCapabilities?, ClientError)] = [
            (nil, .protocol(.undeclaredCapability(tag: 0x11))),
            ([], .protocol(.undeclaredCapability(tag: 0x11))),
            ([.binaryPayload], .protocol(.unexpectedMessage("a prompt with a PAYLOAD; this client answers text only"))),
        ]
        for (declared, expected) in cases {
            let server = try TestServer { connection in
                guard case .authStart(let start)? = try connection.receive(), start.capabilities == (declared ?? []) else {
                    throw ClientError.protocol(.unexpectedMessage("AUTH_START without the expected CAPABILITIES"))
                }
                try connection.send(.promptEchoOff("Touch your key: ", payload: [0, 1, 2]))
                if let message = try connection.receive() { throw ClientError.protocol(.unexpectedMessage("got \(message.type.name), expected EOF")) }
            }
            var asked = false
            #expect(throws: expected) {
                try LoginDialog.run(socketPath: server.path, start: AuthStart(user: "u", service: "s", capabilities: declared)) { _, _ in
                    asked = true
                    return "1"
                }
            }
            #expect(!asked, "the prompt reached the conversation")
            #expect(server.finish() == [])
        }
    }

    @Test("a silent daemon in a dialog times out")
    func dialogTimeout() throws {
        let server = try TestServer { connection in connection.drainUntilEOF() }
        #expect(throws: ClientError.timedOut) {
            try LoginDialog.run(socketPath: server.path, start: AuthStart(user: "u", service: "s"), timeoutSeconds: 0.2) { _, _ in "1" }
        }
        #expect(server.finish() == [])
    }

    @Test("an answer over the TEXT bound is refused before sending")
    func oversizedAnswer() throws {
        let server = try TestServer { connection in
            _ = try connection.receive()
            try connection.send(.promptEchoOff("Code: "))
            connection.drainUntilEOF()
        }
        #expect(throws: ClientError(.invalidMessage(.fieldTooLong(tag: 0x10, length: 9000)))) {
            try LoginDialog.run(socketPath: server.path, start: AuthStart(user: "u", service: "s")) { _, _ in
                String(repeating: "9", count: 9000)
            }
        }
        #expect(server.finish() == [])
    }
}
