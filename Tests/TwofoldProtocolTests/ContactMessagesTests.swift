import Testing
import TwofoldProtocol

/// Contacts in the control documents: a status from a daemon before contacts still decodes, and
/// the new requests and responses round-trip.
@Suite struct ContactMessagesTests {
    @Test func statusWithoutContactsStillDecodesAndWithThemRoundTrips() throws {
        let old = try ControlCodec.decodeJSON(UserStatus.self, from: Array("""
            {"user":"bob","enrollment":"active","method":"totp","required":false,"requiredBecause":"policy","recoveryCodesLeft":3,\
            "failures":0,"override":"policy"}
            """.utf8))
        #expect(old.contacts == nil)
        var status = old
        status.contacts = [ContactInfo(user: "bob", channel: "email", masked: "b***@example.com", verified: true, addedMillis: 1, verifiedMillis: 2)]
        status.method = "email,totp"
        guard case .response(let json) = try ControlCodec.encodeResponse(ControlResponse.status(status)) else {
            Issue.record("not a RESPONSE"); return
        }
        #expect(try ControlCodec.decodeJSON(ControlResponse.self, from: json) == .status(status))
        for request in [ControlRequest.contactAdd(user: nil, channel: "sms", value: "+4915112345678", code: "123456"),
                        .contactVerify(user: "bob", code: "12345678"), .contactRemove(user: nil, channel: "email", value: nil, code: nil),
                        .contactList(user: nil, all: true), .contactImport([ContactImport(user: "a", channel: "email", value: "a@example.com")]),
                        .codeSend(user: nil, channel: nil)] {
            guard case .request(let json) = try ControlCodec.encodeRequest(request) else { Issue.record("not a REQUEST"); continue }
            #expect(try ControlCodec.decodeJSON(ControlRequest.self, from: json) == request)
        }
    }
}
