import Testing
import TwofoldProtocol

/// The host registry's additions to the control documents: older documents (without them) still
/// decode, and the name and fingerprint forms.
@Suite struct HostMessagesTests {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try ControlCodec.decodeJSON(type, from: Array(json.utf8))
    }

    @Test func documentsWithoutTheHostFieldsStillDecode() throws {
        #expect(try decode(ControlRequest.self, #"{"audit":{"user":"alice","limit":10}}"#)
                == .audit(user: "alice", sinceMillis: nil, outcome: nil, limit: 10, host: nil))
        let entry = try decode(AuditEntry.self, #"{"timeMillis":1,"action":"verify","outcome":"success"}"#)
        #expect(entry.host == nil && entry.user == nil)
        let status = try decode(UserStatus.self, """
            {"user":"bob","enrollment":"none","required":false,"requiredBecause":"policy","recoveryCodesLeft":0,"failures":0,"override":"policy"}
            """)
        #expect(status.lastSuccessHost == nil)
        // And the new ones round-trip.
        for request in [ControlRequest.audit(user: nil, sinceMillis: nil, outcome: nil, limit: 5, host: "bastion-1"), .hostList,
                        .hostAdd(name: "a", certificatePEM: nil, fingerprint: "ab", notAfterMillis: 7), .hostRevoke(name: "a")] {
            guard case .request(let json) = try ControlCodec.encodeRequest(request) else { Issue.record("not a REQUEST"); continue }
            #expect(try ControlCodec.decodeJSON(ControlRequest.self, from: json) == request)
        }
    }

    @Test func hostNamesAreDNSNamesInLowerCase() {
        #expect(HostIdentity.normalizedName("Bastion-1.Example.COM") == "bastion-1.example.com")
        #expect(HostIdentity.normalizedName("a") == "a")
        #expect(HostIdentity.normalizedName(String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 63)) != nil)
        for bad in ["", "a_b", "-a", "a-", "a..b", ".a", "a.", "a b", "é", String(repeating: "a", count: 64),
                    String(repeating: "abc.", count: 63) + "abcd"] {
            #expect(HostIdentity.normalizedName(bad) == nil, "\(bad)")
        }
    }

    @Test func fingerprintsAre64HexDigitsOr32Pairs() {
        let hex = String(repeating: "0a", count: 32)
        let pairs: [String] = Array(repeating: "0a", count: 32)
        let colons: String = pairs.joined(separator: ":")
        #expect(HostIdentity.normalizedFingerprint(hex.uppercased()) == hex)
        #expect(HostIdentity.normalizedFingerprint(colons.uppercased()) == hex)
        let bad: [String] = ["", String(hex.dropLast()), hex + "0", String(hex.dropLast()) + "g",
                             pairs.dropLast().joined(separator: ":"), colons + ":", "0:a" + String(hex.dropFirst(2))]
        for bad in bad {
            #expect(HostIdentity.normalizedFingerprint(bad) == nil, "\(bad)")
        }
    }
}
