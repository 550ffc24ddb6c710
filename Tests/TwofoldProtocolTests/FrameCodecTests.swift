import Testing
@testable import TwofoldProtocol

/// One message of every type, with optional fields both present and absent.
let sampleMessages: [Message] = [
    .authStart(AuthStart(user: "alice", service: "sshd")),
    .authStart(AuthStart(user: "bob", service: "login", rhost: "192.0.2.7", tty: "pts/3", ruser: "carol",
                         password: "correct horse battery staple", deadlineMillis: 10_000)),
    .authStart(AuthStart(user: "", service: "")),
    .authStart(AuthStart(user: "carol", service: "login", deadlineMillis: 5_000, capabilities: [])),
    .authStart(AuthStart(user: "dan", service: "gdm", capabilities: [.binaryPayload, ClientCapabilities(rawValue: 0x8000_0000)])),
    .answer("123456"),
    .answer(""),
    .answer("", payload: [0x00, 0xFF, 0x10, 0x00]),
    .answer("", payload: []),
    .promptEchoOff("Verification code: "),
    .promptEchoOff("Touch your security key: ", payload: [UInt8](0...255)),
    .promptEchoOn("Recovery code (or press Enter): "),
    .promptEchoOn("Key: ", payload: [0]),
    .info("Welcome, Zoë — 😀"),
    .errorMessage("Wrong code. 2 attempts left."),
    .verdict(.success, reason: nil),
    .verdict(.locked, reason: "too many failures"),
    .verdict(.denied, reason: ""),
    .request(Array(#"{"ping":{}}"#.utf8)),
    .response(Array(#"{"ok":{}}"#.utf8)),
    .response([]),
    .protocolError("frame too large"),
    .relay(Array(#"{"uid":0,"gid":0,"pid":1,"userGroups":[]}"#.utf8)),
] + VerdictCode.allCases.map { .verdict($0, reason: nil) }

@Suite("FrameCodec")
struct FrameCodecTests {
    @Test("round trip", arguments: sampleMessages)
    func roundTrip(_ message: Message) throws {
        let bytes = try FrameCodec.encode(message)
        #expect(Array(bytes.prefix(4)) == be32(bytes.count - 4))
        #expect(bytes[4] == ProtocolVersion.current)
        #expect(bytes[5] == message.type.rawValue)
        let decoded = try decodeBody(Array(bytes.dropFirst(4)))
        #expect(decoded == message)
    }

    @Test("every message type is covered by the round trip")
    func everyTypeCovered() {
        let covered = Set(sampleMessages.map(\.type.rawValue))
        #expect(covered == Set(MessageType.allCases.map(\.rawValue)))
    }

    @Test("AUTH_START matches bytes written by hand from docs/protocol.md")
    func authStartBytes() throws {
        let message = Message.authStart(AuthStart(user: "alice", service: "sshd", rhost: "10.0.0.7", tty: "pts/0"))
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x24,                                   // length 36
            0x01,                                                     // version 1
            0x01,                                                     // AUTH_START
            0x01, 0x00, 0x05, 0x61, 0x6C, 0x69, 0x63, 0x65,           // USER "alice"
            0x02, 0x00, 0x04, 0x73, 0x73, 0x68, 0x64,                 // SERVICE "sshd"
            0x03, 0x00, 0x08, 0x31, 0x30, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x37,  // RHOST "10.0.0.7"
            0x04, 0x00, 0x05, 0x70, 0x74, 0x73, 0x2F, 0x30,           // TTY "pts/0"
        ]
        #expect(try FrameCodec.encode(message) == expected)
        #expect(try decodeBody(Array(expected.dropFirst(4))) == message)
    }

    @Test("VERDICT matches bytes written by hand")
    func verdictBytes() throws {
        let expected: [UInt8] = [0x00, 0x00, 0x00, 0x09, 0x01, 0x20, 0x20, 0x00, 0x01, 0x02, 0x10, 0x00, 0x00]
        #expect(try FrameCodec.encode(.verdict(.locked, reason: "")) == expected)
        #expect(try FrameCodec.encode(.verdict(.success, reason: nil)) == [0, 0, 0, 6, 1, 0x20, 0x20, 0, 1, 0])
    }

    @Test("encode(into:) appends to what is already there")
    func encodeAppends() throws {
        var buffer: [UInt8] = [0xAA, 0xBB]
        try FrameCodec.encode(.info("hi"), into: &buffer)
        try FrameCodec.encode(.answer("1"), into: &buffer)
        #expect(buffer == [0xAA, 0xBB, 0, 0, 0, 7, 1, 0x13, 0x10, 0, 2, 0x68, 0x69, 0, 0, 0, 6, 1, 0x02, 0x10, 0, 1, 0x31])
    }

    @Test("fields at exactly their bound are accepted", arguments: FieldTag.allCases)
    func fieldAtBound(_ tag: FieldTag) throws {
        let message = messageWith(tag, length: tag.bound)
        let bytes = try FrameCodec.encode(message)
        #expect(try decodeBody(Array(bytes.dropFirst(4))) == message)
    }

    @Test("encoding a field over its bound throws and leaves the buffer alone",
          arguments: FieldTag.allCases.filter { ![.result, .deadline, .capabilities].contains($0) })
    func encodeOverBound(_ tag: FieldTag) throws {
        var buffer: [UInt8] = [1, 2, 3]
        #expect(throws: ProtocolError.fieldTooLong(tag: tag.rawValue, length: tag.bound + 1)) {
            try FrameCodec.encode(messageWith(tag, length: tag.bound + 1), into: &buffer)
        }
        #expect(buffer == [1, 2, 3])
    }

    @Test("encoding a text with NUL or JSON that is not UTF-8 throws invalidText")
    func encodeInvalidText() {
        #expect(throws: ProtocolError.invalidText(0x10)) { try FrameCodec.encode(.answer("12\u{0}34")) }
        #expect(throws: ProtocolError.invalidText(0x01)) {
            try FrameCodec.encode(.authStart(AuthStart(user: "a\u{0}", service: "s")))
        }
        #expect(throws: ProtocolError.invalidText(0x06)) {
            try FrameCodec.encode(.authStart(AuthStart(user: "a", service: "s", password: "\u{0}")))
        }
        #expect(throws: ProtocolError.invalidText(0x30)) { try FrameCodec.encode(.request([0x7B, 0xFF, 0x7D])) }
        #expect(throws: ProtocolError.invalidText(0x30)) { try FrameCodec.encode(.response([0x00])) }
    }

    @Test("descriptions never show a password or an answer")
    func redaction() {
        let start = AuthStart(user: "alice", service: "sshd", password: "hunter2-secret")
        let secretBytes = Array("payload-secret".utf8)
        let messages: [Message] = [.authStart(start), .answer("987654"), .answer("987654", payload: secretBytes),
                                   .promptEchoOff("Touch: ", payload: secretBytes)]
        var dumped = ""
        dump(messages, to: &dumped)
        let renderings = [
            start.description, start.debugDescription, String(describing: start), String(reflecting: start),
            "\(messages)", String(reflecting: messages), dumped,
        ]
        let payloadRenderings = [String(decoding: secretBytes, as: UTF8.self), "\(secretBytes)", secretBytes.map { String($0) }.joined(separator: ", ")]
        for text in renderings {
            #expect(!text.contains("hunter2"))
            #expect(!text.contains("987654"))
            for payload in payloadRenderings { #expect(!text.contains(payload), "a PAYLOAD shown in \(text)") }
        }
        #expect(Message.answer("987654", payload: secretBytes).description == "ANSWER <redacted> PAYLOAD <redacted>")
        #expect(Message.promptEchoOff("Touch: ", payload: secretBytes).description == #"PROMPT_ECHO_OFF "Touch: " PAYLOAD <redacted>"#)
        #expect(AuthStart(user: "u", service: "s", capabilities: [.binaryPayload]).description.contains("capabilities: BINARY_PAYLOAD"))
        #expect(start.description.contains("alice"))
        #expect(start.description.contains("<redacted>"))
        #expect(Message.answer("987654").description == "ANSWER <redacted>")
        #expect(Message.request(Array(#"{"code":"123456"}"#.utf8)).description == "REQUEST 17 bytes of JSON")
    }
}

/// A message carrying `tag` with a value of `length` bytes (ASCII), other fields minimal.
func messageWith(_ tag: FieldTag, length: Int) -> Message {
    let text = String(repeating: "x", count: length)
    switch tag {
    case .user: return .authStart(AuthStart(user: text, service: "s"))
    case .service: return .authStart(AuthStart(user: "u", service: text))
    case .rhost: return .authStart(AuthStart(user: "u", service: "s", rhost: text))
    case .tty: return .authStart(AuthStart(user: "u", service: "s", tty: text))
    case .ruser: return .authStart(AuthStart(user: "u", service: "s", ruser: text))
    case .password: return .authStart(AuthStart(user: "u", service: "s", password: text))
    case .text: return .info(text)
    case .result: return .verdict(.failure, reason: nil)
    case .deadline: return .authStart(AuthStart(user: "u", service: "s", deadlineMillis: .max))
    case .capabilities: return .authStart(AuthStart(user: "u", service: "s", capabilities: ClientCapabilities(rawValue: .max)))
    case .payload: return .answer("", payload: [UInt8](repeating: 0xFF, count: length))
    case .json: return .request(Array(text.utf8))
    }
}
