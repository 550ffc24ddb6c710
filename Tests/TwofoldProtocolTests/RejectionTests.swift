import Testing
@testable import TwofoldProtocol

/// A hand-built frame body and the error it must be rejected with.
struct Rejection: Sendable, CustomTestStringConvertible {
    var name: String
    var body: [UInt8]
    var error: ProtocolError
    var testDescription: String { name }
}

private let user = RawField(0x01, "alice")
private let service = RawField(0x02, "sshd")
private let text = RawField(0x10, "hello")

let rejections: [Rejection] = [
    // Framing.
    Rejection(name: "empty body", body: [], error: .frameTooShort),
    Rejection(name: "version only", body: [1], error: .frameTooShort),
    Rejection(name: "version 2", body: body(type: 0x13, version: 2, [text]), error: .badVersion(2)),
    Rejection(name: "version 0", body: body(type: 0x13, version: 0, [text]), error: .badVersion(0)),
    Rejection(name: "type 0x00", body: body(type: 0x00, [text]), error: .unknownType(0x00)),
    Rejection(name: "type 0x03", body: body(type: 0x03, [text]), error: .unknownType(0x03)),
    Rejection(name: "type 0x7E", body: body(type: 0x7E, [text]), error: .unknownType(0x7E)),
    Rejection(name: "type 0xFF", body: body(type: 0xFF), error: .unknownType(0xFF)),
    // Overruns.
    Rejection(name: "field header cut after the tag", body: body(type: 0x13, [text], trailing: [0x10]), error: .fieldOverrun),
    Rejection(name: "field header cut in the length", body: body(type: 0x13, [text], trailing: [0x42, 0x00]), error: .fieldOverrun),
    Rejection(name: "text value past the end", body: body(type: 0x13, [RawField(0x10, Array("abc".utf8), length: 4)]), error: .fieldOverrun),
    Rejection(name: "unknown field past the end", body: body(type: 0x13, [text, RawField(0x42, [1, 2], length: 3)]), error: .fieldOverrun),
    Rejection(name: "JSON past the end", body: body(type: 0x30, [RawField(0x30, Array("{}".utf8), length: 100)]), error: .fieldOverrun),
    // Duplicates.
    Rejection(name: "TEXT twice", body: body(type: 0x13, [text, text]), error: .duplicateField(0x10)),
    Rejection(name: "USER twice", body: body(type: 0x01, [user, service, user]), error: .duplicateField(0x01)),
    Rejection(name: "RESULT twice", body: body(type: 0x20, [RawField(0x20, [0]), RawField(0x20, [0])]), error: .duplicateField(0x20)),
    Rejection(name: "known tag where the type does not list it", body: body(type: 0x13, [text, user]), error: .fieldNotAllowed(tag: 0x01, type: 0x13)),
    Rejection(name: "RESULT in an ANSWER", body: body(type: 0x02, [text, RawField(0x20, [0])]), error: .fieldNotAllowed(tag: 0x20, type: 0x02)),
    // CAPABILITIES and PAYLOAD where the type does not list them, or twice.
    Rejection(name: "CAPABILITIES in an ANSWER", body: body(type: 0x02, [text, RawField(0x08, [0, 0, 0, 1])]), error: .fieldNotAllowed(tag: 0x08, type: 0x02)),
    Rejection(name: "CAPABILITIES in a prompt", body: body(type: 0x11, [text, RawField(0x08, [0, 0, 0, 1])]), error: .fieldNotAllowed(tag: 0x08, type: 0x11)),
    Rejection(name: "CAPABILITIES twice", body: body(type: 0x01, [user, service, RawField(0x08, [0, 0, 0, 0]), RawField(0x08, [0, 0, 0, 1])]), error: .duplicateField(0x08)),
    Rejection(name: "PAYLOAD in AUTH_START", body: body(type: 0x01, [user, service, RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x01)),
    Rejection(name: "PAYLOAD in INFO", body: body(type: 0x13, [text, RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x13)),
    Rejection(name: "PAYLOAD in ERROR_MSG", body: body(type: 0x14, [text, RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x14)),
    Rejection(name: "PAYLOAD in VERDICT", body: body(type: 0x20, [RawField(0x20, [0]), RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x20)),
    Rejection(name: "PAYLOAD in PROTOCOL_ERROR", body: body(type: 0x7F, [text, RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x7F)),
    Rejection(name: "PAYLOAD in a REQUEST", body: body(type: 0x30, [RawField(0x30, "{}"), RawField(0x11, [1])]), error: .fieldNotAllowed(tag: 0x11, type: 0x30)),
    Rejection(name: "PAYLOAD twice in an ANSWER", body: body(type: 0x02, [text, RawField(0x11, [1]), RawField(0x11, [2])]), error: .duplicateField(0x11)),
    // Over the bound (u16 lengths over the bound with the bytes present).
    Rejection(name: "USER of 257", body: body(type: 0x01, [RawField(0x01, [UInt8](repeating: 0x61, count: 257)), service]), error: .fieldTooLong(tag: 0x01, length: 257)),
    Rejection(name: "SERVICE of 65", body: body(type: 0x01, [user, RawField(0x02, [UInt8](repeating: 0x61, count: 65))]), error: .fieldTooLong(tag: 0x02, length: 65)),
    Rejection(name: "RHOST of 257", body: body(type: 0x01, [user, service, RawField(0x03, [UInt8](repeating: 0x61, count: 257))]), error: .fieldTooLong(tag: 0x03, length: 257)),
    Rejection(name: "TTY of 65", body: body(type: 0x01, [user, service, RawField(0x04, [UInt8](repeating: 0x61, count: 65))]), error: .fieldTooLong(tag: 0x04, length: 65)),
    Rejection(name: "RUSER of 257", body: body(type: 0x01, [user, service, RawField(0x05, [UInt8](repeating: 0x61, count: 257))]), error: .fieldTooLong(tag: 0x05, length: 257)),
    Rejection(name: "PASSWORD of 513", body: body(type: 0x01, [user, service, RawField(0x06, [UInt8](repeating: 0x61, count: 513))]), error: .fieldTooLong(tag: 0x06, length: 513)),
    Rejection(name: "TEXT of 8193", body: body(type: 0x12, [RawField(0x10, [UInt8](repeating: 0x61, count: 8193))]), error: .fieldTooLong(tag: 0x10, length: 8193)),
    Rejection(name: "RESULT of 2", body: body(type: 0x20, [RawField(0x20, [0, 0])]), error: .fieldTooLong(tag: 0x20, length: 2)),
    Rejection(name: "CAPABILITIES of 5", body: body(type: 0x01, [user, service, RawField(0x08, [0, 0, 0, 0, 1])]), error: .fieldTooLong(tag: 0x08, length: 5)),
    Rejection(name: "PAYLOAD of 8193 in an ANSWER", body: body(type: 0x02, [text, RawField(0x11, [UInt8](repeating: 0, count: 8_193))]), error: .fieldTooLong(tag: 0x11, length: 8_193)),
    Rejection(name: "PAYLOAD of 8193 in a prompt", body: body(type: 0x12, [text, RawField(0x11, [UInt8](repeating: 0xFF, count: 8_193))]), error: .fieldTooLong(tag: 0x11, length: 8_193)),
    Rejection(name: "JSON of 65001 in a REQUEST", body: body(type: 0x30, [RawField(0x30, [UInt8](repeating: 0x20, count: 65_001))]), error: .fieldTooLong(tag: 0x30, length: 65_001)),
    Rejection(name: "JSON escape 0xFFFF in a REQUEST is a plain length", body: body(type: 0x30, [RawField(0x30, [UInt8](repeating: 0x20, count: 65_000), length: 0xFFFF)]), error: .fieldTooLong(tag: 0x30, length: 0xFFFF)),
    Rejection(name: "over the bound is reported before the overrun", body: body(type: 0x13, [RawField(0x10, [], length: 0xFFFF)]), error: .fieldTooLong(tag: 0x10, length: 0xFFFF)),
    // Missing required fields.
    Rejection(name: "AUTH_START without USER", body: body(type: 0x01, [service]), error: .missingField(0x01)),
    Rejection(name: "AUTH_START without SERVICE", body: body(type: 0x01, [user, RawField(0x03, "host")]), error: .missingField(0x02)),
    Rejection(name: "AUTH_START with USER only under an unknown tag", body: body(type: 0x01, [RawField(0x0F, "alice"), service]), error: .missingField(0x01)),
    Rejection(name: "ANSWER without TEXT", body: body(type: 0x02), error: .missingField(0x10)),
    Rejection(name: "PROMPT_ECHO_OFF without TEXT", body: body(type: 0x11, [RawField(0x4F, "x")]), error: .missingField(0x10)),
    Rejection(name: "PROMPT_ECHO_ON without TEXT", body: body(type: 0x12), error: .missingField(0x10)),
    Rejection(name: "INFO without TEXT", body: body(type: 0x13, [RawField(0x4F, "hello")]), error: .missingField(0x10)),
    Rejection(name: "a prompt with a PAYLOAD but no TEXT", body: body(type: 0x11, [RawField(0x11, [1, 2, 3])]), error: .missingField(0x10)),
    Rejection(name: "an ANSWER with a PAYLOAD but no TEXT", body: body(type: 0x02, [RawField(0x11, [1, 2, 3])]), error: .missingField(0x10)),
    Rejection(name: "ERROR_MSG without TEXT", body: body(type: 0x14), error: .missingField(0x10)),
    Rejection(name: "VERDICT without RESULT", body: body(type: 0x20, [text]), error: .missingField(0x20)),
    Rejection(name: "REQUEST without JSON", body: body(type: 0x30), error: .missingField(0x30)),
    Rejection(name: "RESPONSE without JSON", body: body(type: 0x31, [RawField(0x4F, "x")]), error: .missingField(0x30)),
    Rejection(name: "PROTOCOL_ERROR without TEXT", body: body(type: 0x7F), error: .missingField(0x10)),
    // RESULT.
    Rejection(name: "empty RESULT", body: body(type: 0x20, [RawField(0x20, [])]), error: .invalidField(0x20)),
    // CAPABILITIES is exactly four bytes, like DEADLINE.
    Rejection(name: "empty CAPABILITIES", body: body(type: 0x01, [user, service, RawField(0x08, [])]), error: .invalidField(0x08)),
    Rejection(name: "CAPABILITIES of 1", body: body(type: 0x01, [user, service, RawField(0x08, [1])]), error: .invalidField(0x08)),
    Rejection(name: "CAPABILITIES of 3", body: body(type: 0x01, [user, service, RawField(0x08, [0, 0, 1])]), error: .invalidField(0x08)),
    Rejection(name: "verdict code 7", body: body(type: 0x20, [RawField(0x20, [7])]), error: .unknownVerdictCode(7)),
    Rejection(name: "verdict code 0xFF", body: body(type: 0x20, [RawField(0x20, [0xFF])]), error: .unknownVerdictCode(0xFF)),
    // Text.
    Rejection(name: "NUL in USER", body: body(type: 0x01, [RawField(0x01, [0x61, 0x00, 0x62]), service]), error: .invalidText(0x01)),
    Rejection(name: "NUL in a long ASCII TEXT", body: body(type: 0x13, [RawField(0x10, Array("0123456789abcdef0123".utf8) + [0] + Array("xyzxyzxyz".utf8))]), error: .invalidText(0x10)),
    Rejection(name: "NUL at byte 8 of TEXT", body: body(type: 0x13, [RawField(0x10, Array("01234567".utf8) + [0])]), error: .invalidText(0x10)),
    Rejection(name: "byte 0xFF in TEXT", body: body(type: 0x11, [RawField(0x10, [0x41, 0xFF])]), error: .invalidText(0x10)),
    Rejection(name: "stray continuation byte", body: body(type: 0x13, [RawField(0x10, [0x80])]), error: .invalidText(0x10)),
    Rejection(name: "overlong '/' (C0 AF)", body: body(type: 0x13, [RawField(0x10, [0xC0, 0xAF])]), error: .invalidText(0x10)),
    Rejection(name: "overlong three-byte (E0 80 AF)", body: body(type: 0x13, [RawField(0x10, [0xE0, 0x80, 0xAF])]), error: .invalidText(0x10)),
    Rejection(name: "surrogate (ED A0 80)", body: body(type: 0x13, [RawField(0x10, [0xED, 0xA0, 0x80])]), error: .invalidText(0x10)),
    Rejection(name: "above U+10FFFF (F4 90 80 80)", body: body(type: 0x13, [RawField(0x10, [0xF4, 0x90, 0x80, 0x80])]), error: .invalidText(0x10)),
    Rejection(name: "truncated sequence (E2 82)", body: body(type: 0x13, [RawField(0x10, [0xE2, 0x82])]), error: .invalidText(0x10)),
    Rejection(name: "invalid UTF-8 in PASSWORD", body: body(type: 0x01, [user, service, RawField(0x06, [0xE9, 0x74, 0xE9])]), error: .invalidText(0x06)),
    Rejection(name: "invalid UTF-8 in SERVICE", body: body(type: 0x01, [user, RawField(0x02, [0xFE])]), error: .invalidText(0x02)),
    Rejection(name: "NUL in JSON", body: body(type: 0x30, [RawField(0x30, [0x7B, 0x00, 0x7D])]), error: .invalidText(0x30)),
    Rejection(name: "invalid UTF-8 in VERDICT reason", body: body(type: 0x20, [RawField(0x20, [1]), RawField(0x10, [0xC3])]), error: .invalidText(0x10)),
    // Per-type frame limit.
    Rejection(name: "INFO frame over 65,536 bytes", body: body(type: 0x13, [text, RawField(0x42, [UInt8](repeating: 0, count: 65_530))]), error: .frameTooLarge(announced: 65_543, max: 65_536)),
]

@Suite("Rejections")
struct RejectionTests {
    @Test("decodeBody rejects", arguments: rejections)
    func decodeBodyRejects(_ rejection: Rejection) {
        #expect(throws: rejection.error) { try decodeBody(rejection.body) }
    }

    @Test("the stream decoder rejects the same frames", arguments: rejections)
    func streamRejects(_ rejection: Rejection) {
        var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
        decoder.append(frame(rejection.body))
        #expect(throws: rejection.error) { try decoder.next() }
        // The decoder stays failed.
        decoder.append(try! FrameCodec.encode(.info("later")))
        #expect(throws: rejection.error) { try decoder.next() }
    }

    @Test("a frame announcing 1 GiB is rejected with only its 4-byte length buffered")
    func oneGiB() {
        var decoder = FrameDecoder()
        decoder.append([0x40, 0x00, 0x00, 0x00])
        #expect(decoder.bufferedByteCount == 4)
        #expect(throws: ProtocolError.frameTooLarge(announced: 1 << 30, max: 65_536)) { try decoder.next() }
        #expect(decoder.bufferedByteCount == 4)
    }

    @Test("announced lengths at and past the limit", arguments: [
        (65_536, true), (65_537, false), (Int(UInt32.max), false),
    ])
    func announcedLimit(_ length: Int, _ acceptable: Bool) throws {
        var decoder = FrameDecoder()
        decoder.append(be32(length))
        if acceptable {
            #expect(try decoder.next() == nil)  // waits for the body
        } else {
            #expect(throws: ProtocolError.frameTooLarge(announced: length, max: 65_536)) { try decoder.next() }
        }
    }

    @Test("announced lengths 0 and 1 are too short", arguments: [0, 1])
    func announcedTooShort(_ length: Int) {
        var decoder = FrameDecoder()
        decoder.append(be32(length))
        #expect(throws: ProtocolError.frameTooShort) { try decoder.next() }
    }

    @Test("unknown tags are skipped (and may repeat)")
    func unknownTagsSkipped() throws {
        let bytes = body(type: 0x01, [
            RawField(0x00, []), RawField(0x0F, "future"), user, RawField(0xFF, [0xFF, 0x00, 0xFE]),
            service, RawField(0x42, [UInt8](repeating: 0, count: 300)),
            RawField(0x42, [1]),  // an unknown tag may repeat
        ])
        #expect(try decodeBody(bytes) == .authStart(AuthStart(user: "alice", service: "sshd")))
    }

    @Test("a known tag in a type that does not list it is a protocol error (RESULT outside VERDICT, TEXT in AUTH_START, JSON in VERDICT)")
    func knownTagsOutOfPlace() {
        #expect(throws: ProtocolError.fieldNotAllowed(tag: 0x20, type: 0x02)) {
            try decodeBody(body(type: 0x02, [RawField(0x10, "123456"), RawField(0x20, [0])]))
        }
        #expect(throws: ProtocolError.fieldNotAllowed(tag: 0x20, type: 0x01)) {
            try decodeBody(body(type: 0x01, [user, service, RawField(0x20, [0])]))
        }
        #expect(throws: ProtocolError.fieldNotAllowed(tag: 0x10, type: 0x01)) {
            try decodeBody(body(type: 0x01, [user, RawField(0x10, "x"), service]))
        }
        #expect(throws: ProtocolError.fieldNotAllowed(tag: 0x30, type: 0x20)) {
            try decodeBody(body(type: 0x20, [RawField(0x30, "{}"), RawField(0x20, [3])]))
        }
        #expect(throws: ProtocolError.fieldNotAllowed(tag: 0x07, type: 0x11)) {
            try decodeBody(body(type: 0x11, [RawField(0x10, "Code: "), RawField(0x07, [0, 0, 0, 1])]))
        }
    }

    @Test("DEADLINE is a binary u32 in AUTH_START: decoded, and refused at any other length")
    func deadlineField() throws {
        let start = body(type: 0x01, [user, service, RawField(0x07, [0x00, 0x01, 0x86, 0xA0])])
        #expect(try decodeBody(start) == .authStart(AuthStart(user: "alice", service: "sshd", deadlineMillis: 100_000)))
        #expect(throws: ProtocolError.invalidField(0x07)) { try decodeBody(body(type: 0x01, [user, service, RawField(0x07, [0, 1])])) }
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x07, length: 5)) {
            try decodeBody(body(type: 0x01, [user, service, RawField(0x07, [0, 0, 0, 0, 1])]))
        }
        let encoded = try FrameCodec.encode(.authStart(AuthStart(user: "alice", service: "sshd", deadlineMillis: 0xDEADBEEF)))
        #expect(Array(encoded.suffix(7)) == [0x07, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF])
    }

    @Test("CAPABILITIES is a binary u32 bitset in AUTH_START: absent is nil, unknown bits are kept on the wire and dropped by knownOnly")
    func capabilitiesField() throws {
        #expect(try decodeBody(body(type: 0x01, [user, service])) == .authStart(AuthStart(user: "alice", service: "sshd")))
        let cases: [([UInt8], UInt32)] = [
            ([0, 0, 0, 0], 0), ([0, 0, 0, 1], 1), ([0x80, 0, 0, 0x01], 0x8000_0001), ([0xFF, 0xFF, 0xFF, 0xFE], 0xFFFF_FFFE),
        ]
        for (bytes, raw) in cases {
            let decoded = try decodeBody(body(type: 0x01, [user, service, RawField(0x08, bytes)]))
            #expect(decoded == .authStart(AuthStart(user: "alice", service: "sshd", capabilities: ClientCapabilities(rawValue: raw))))
            guard case .authStart(let start) = decoded, let capabilities = start.capabilities else { Issue.record("\(decoded)"); continue }
            #expect(capabilities.knownOnly.rawValue == raw & 3, "only BINARY_PAYLOAD (bit 0) and FIDO2 (bit 1) are known")
            #expect(capabilities.contains(.binaryPayload) == (raw & 1 == 1))
        }
        // Encoded after DEADLINE, four bytes big-endian, also when empty.
        let encoded = try FrameCodec.encode(.authStart(AuthStart(user: "alice", service: "sshd", deadlineMillis: 10_000, capabilities: [])))
        #expect(Array(encoded.suffix(14)) == [0x07, 0x00, 0x04, 0x00, 0x00, 0x27, 0x10, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00])
        let both = try FrameCodec.encode(.authStart(AuthStart(user: "alice", service: "sshd", capabilities: [.binaryPayload, ClientCapabilities(rawValue: 0x4000_0000)])))
        #expect(Array(both.suffix(7)) == [0x08, 0x00, 0x04, 0x40, 0x00, 0x00, 0x01])
    }

    @Test("PAYLOAD is bytes in a prompt or an answer: NUL, 0xFF and invalid UTF-8 pass, empty is present, absent is nil")
    func payloadField() throws {
        let binary: [UInt8] = [0x00, 0xFF, 0xC0, 0xAF, 0xED, 0xA0, 0x80, 0x00]
        #expect(try decodeBody(body(type: 0x02, [RawField(0x10, ""), RawField(0x11, binary)])) == .answer("", payload: binary))
        #expect(try decodeBody(body(type: 0x11, [RawField(0x11, binary), RawField(0x10, "Touch your key: ")])) == .promptEchoOff("Touch your key: ", payload: binary))
        #expect(try decodeBody(body(type: 0x12, [RawField(0x10, "Key: "), RawField(0x11, [])])) == .promptEchoOn("Key: ", payload: []))
        #expect(try decodeBody(body(type: 0x02, [RawField(0x10, "123456")])) == .answer("123456", payload: nil))
        #expect(Message.answer("1", payload: []) != Message.answer("1"), "an empty PAYLOAD is still a PAYLOAD")
        let encoded = try FrameCodec.encode(.answer("", payload: [0xDE, 0xAD]))
        #expect(encoded == [0, 0, 0, 10, 1, 0x02, 0x10, 0, 0, 0x11, 0, 2, 0xDE, 0xAD])
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x11, length: 8_193)) {
            try FrameCodec.encode(.promptEchoOff("x", payload: [UInt8](repeating: 0, count: 8_193)))
        }
    }

    @Test("a PAYLOAD needs BINARY_PAYLOAD, in either direction; nothing else does")
    func payloadNeedsTheCapability() throws {
        let withPayload: [Message] = [.answer("", payload: [1]), .promptEchoOff("k", payload: []), .promptEchoOn("k", payload: [0xFF])]
        let without: [Message] = [
            .answer("123456"), .promptEchoOff("Code: "), .promptEchoOn("Code: "), .info("i"), .errorMessage("e"),
            .verdict(.success, reason: nil), .protocolError("p"), .authStart(AuthStart(user: "u", service: "s", capabilities: [.binaryPayload])),
        ]
        let undeclared: [ClientCapabilities] = [[], ClientCapabilities(rawValue: 0xFFFF_FFFE)]
        for capabilities in undeclared {
            for message in withPayload {
                #expect(throws: ProtocolError.undeclaredCapability(tag: 0x11), "\(message) with \(capabilities)") { try capabilities.check(message) }
            }
            for message in without { try capabilities.check(message) }
        }
        for message in withPayload + without { try ClientCapabilities.binaryPayload.check(message) }
        #expect(ProtocolError.undeclaredCapability(tag: 0x11).description
                == "field PAYLOAD (0x11) needs the capability BINARY_PAYLOAD, which the client did not declare")
        #expect(ClientCapabilities([]).description == "none")
        #expect(ClientCapabilities.binaryPayload.description == "BINARY_PAYLOAD")
        #expect(ClientCapabilities(rawValue: 0x8000_0001).description == "BINARY_PAYLOAD+0x80000000")
    }

    @Test("valid multi-byte UTF-8 is accepted")
    func validUTF8() throws {
        for sample in ["é", "€uro", "😀", "Zoë 日本語 \u{10FFFF} \u{FFFD}", "abcdefgh😀abcdefgh", String(repeating: "ßé", count: 100)] {
            #expect(try decodeBody(body(type: 0x13, [RawField(0x10, sample)])) == .info(sample))
        }
    }

    @Test("error descriptions name tags and sizes, never values")
    func errorDescriptions() {
        #expect(ProtocolError.fieldTooLong(tag: 0x01, length: 300).description == "field USER (0x01) of 300 bytes is too long (bound 256)")
        #expect(ProtocolError.duplicateField(0x42).description == "field 0x42 appears twice")
        #expect(ProtocolError.unknownType(0x0A).description == "unknown message type 0x0A")
        #expect(ProtocolError.frameTooLarge(announced: 1 << 30, max: 65_536).description.contains("1073741824"))
        #expect(ProtocolError.invalidText(0x06).description.contains("PASSWORD"))
    }
}
