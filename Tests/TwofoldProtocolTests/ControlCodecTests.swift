import Testing
@testable import TwofoldProtocol

private struct Greeting: Codable, Equatable, Sendable {
    enum Mood: String, Codable, Sendable { case happy, calm }
    var name: String
    var count: Int
    var mood: Mood
}

@Suite("ControlCodec")
struct ControlCodecTests {
    @Test("request and response round trip through frames")
    func roundTrip() throws {
        let value = Greeting(name: "Zoë/☃", count: 3, mood: .calm)
        let request = try ControlCodec.encodeRequest(value)
        guard case .request(let json) = request else { Issue.record("not a REQUEST"); return }
        #expect(String(decoding: json, as: UTF8.self) == #"{"count":3,"mood":"calm","name":"Zoë/☃"}"#)
        let decoded = try decodeBody(Array(try FrameCodec.encode(request).dropFirst(4)))
        #expect(try ControlCodec.decode(Greeting.self, from: decoded) == value)

        let response = try ControlCodec.encodeResponse([value, value])
        #expect(response.type == .response)
        #expect(try ControlCodec.decode([Greeting].self, from: response) == [value, value])
    }

    @Test("PROTOCOL_ERROR and other messages are errors")
    func wrongMessages() {
        #expect(throws: ControlCodecError.peerProtocolError("bad frame")) {
            try ControlCodec.decode(Greeting.self, from: .protocolError("bad frame"))
        }
        #expect(throws: ProtocolError.unexpectedMessage("expected REQUEST or RESPONSE, got VERDICT")) {
            try ControlCodec.decode(Greeting.self, from: .verdict(.success, reason: nil))
        }
    }

    @Test("undecodable JSON is reported without its values")
    func invalidJSON() throws {
        let wrongValue = Message.response(Array(#"{"count":3,"mood":"topsecret-123456","name":"x"}"#.utf8))
        do {
            _ = try ControlCodec.decode(Greeting.self, from: wrongValue)
            Issue.record("decoded an invalid mood")
        } catch let error as ControlCodecError {
            guard case .invalidJSON = error else { Issue.record("unexpected \(error)"); return }
            #expect(!error.description.contains("topsecret"))
            #expect(error.description.contains("mood"))
        }
        #expect(throws: ControlCodecError.invalidJSON("missing key \"name\" at the top level")) {
            try ControlCodec.decode(Greeting.self, from: .response(Array(#"{"count":3,"mood":"calm"}"#.utf8)))
        }
        #expect(throws: ControlCodecError.invalidJSON("not a valid JSON document")) {
            try ControlCodec.decode(Greeting.self, from: .response(Array("{nope".utf8)))
        }
    }

    @Test("a request over 65,000 bytes of JSON is refused when encoding")
    func tooLarge() {
        let big = String(repeating: "x", count: 70_000)
        #expect(throws: ProtocolError.fieldTooLong(tag: 0x30, length: 70_002)) { try ControlCodec.encodeRequest(big) }
        #expect(throws: Never.self) { try ControlCodec.encodeResponse(big) }
    }
}
