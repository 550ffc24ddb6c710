import Testing
import TwofoldCore
import TwofoldCrypto

@Suite("Contacts' addresses")
struct ContactAddressTests {
    @Test("email addresses: the domain lower-cased, the local part kept; clear errors for the rest")
    func emails() throws {
        #expect(try ContactAddress.normalize("Alice.B+2fa@Example.COM", channel: .email) == "Alice.B+2fa@example.com")
        for bad in ["alice", "a@b@c.com", "@example.com", "alice@", "alice@localhost", "al ice@example.com", "alice@exa mple.com",
                    "alice@-x.com", "\"a\"@example.com", "a..b@example.com", ".a@example.com", "a@example.com\nBcc: x@y.z",
                    "a@ex_ample.com", String(repeating: "a", count: 65) + "@example.com"] {
            #expect(throws: ContactAddress.Invalid.self, "\(bad)") { try ContactAddress.normalize(bad, channel: .email) }
        }
    }

    @Test("phone numbers: E.164, separators people type dropped; the error says the form")
    func phones() throws {
        #expect(try ContactAddress.normalize("+49 151 1234-5678", channel: .sms) == "+4915112345678")
        #expect(try ContactAddress.normalize("+1 (415) 555.0100", channel: .sms) == "+14155550100")
        for bad in ["015112345678", "+0151123456", "+49", "+1234567", "+1234567890123456", "+49 151 abc", "49151123456", "++4915112345678"] {
            let error = #expect(throws: ContactAddress.Invalid.self, "\(bad)") { try ContactAddress.normalize(bad, channel: .sms) }
            #expect(error?.description.contains("E.164") == true)
        }
    }

    @Test("masks show enough to recognise one's own, not to learn another's")
    func masks() {
        #expect(ContactAddress.masked("alice@example.com", channel: .email) == "a***@example.com")
        #expect(ContactAddress.masked("+4915112345612", channel: .sms) == "+49 *** *** 12")
        #expect(!ContactAddress.masked("+4915112345612", channel: .sms).contains("151"))
    }
}

@Suite("Delivered codes")
struct DeliveredCodeTests {
    static let pepper = SecretBytes(Array(repeating: 7, count: 32))

    static func make(digits: Int = 6, now: Int64 = 1_000_000, purpose: DeliveryPurpose = .login) throws -> (String, DeliveredCodeRecord) {
        try DeliveredCode.make(purpose: purpose, channel: .email, destination: "alice@example.com", digits: digits, host: "web-1",
                               service: "sshd", nowMillis: now, validityMillis: 300_000, pepper: pepper)
    }

    @Test("6 to 8 digits, leading zeros kept, uniform enough, only a keyed hash stored")
    func form() throws {
        var firstDigits = [Int](repeating: 0, count: 10)
        for digits in DeliveredCode.digitRange {
            for _ in 0..<200 {
                let (code, record) = try Self.make(digits: digits)
                #expect(code.count == digits && code.allSatisfy(\.isNumber))
                #expect(record.hash == DeliveredCode.hash(code, id: record.id, pepper: Self.pepper))
                #expect(record.hash.count == 32 && record.digits == digits && record.expiresMillis == 1_300_000)
                firstDigits[Int(String(code.first!))!] += 1
            }
        }
        #expect(firstDigits.allSatisfy { $0 > 20 }, "\(firstDigits)")
    }

    @Test("the factor accepts its code once in force, on its host and service only; the rest is rejected")
    func factor() throws {
        let (code, record) = try Self.make()
        func check(_ answer: String, at now: Int64 = 1_100_000, host: String = "web-1", service: String = "sshd") -> FactorVerdict {
            DeliveredCodeFactor(record: record, pepper: Self.pepper, host: host, service: service)
                .check(answer, nowMillis: now, policy: WindowPolicy(window: 1, maxDrift: 3))
        }
        #expect(check(code) == .accepted(.deliveredCode(channel: .email, id: record.id)))
        #expect(check(String(code.prefix(3)) + " " + String(code.dropFirst(3))) == .accepted(.deliveredCode(channel: .email, id: record.id)))
        let wrong = String(code.dropLast()) + (code.last == "0" ? "1" : "0")
        #expect(check(wrong) == .rejected)
        #expect(check(code, at: 1_300_000) == .rejected, "expired")
        #expect(check(code, host: "web-2") == .rejected, "sent for another host")
        #expect(check(code, service: "sudo") == .rejected, "sent for another service")
        #expect(check("12345") == .malformed)
        #expect(check("abcdef") == .malformed)
        let (contactCode, contact) = try Self.make(purpose: .contact)
        #expect(DeliveredCodeFactor(record: contact, pepper: Self.pepper, host: "web-1", service: "sshd")
            .check(contactCode, nowMillis: 1_100_000, policy: WindowPolicy(window: 1, maxDrift: 3)) == .rejected, "a contact's code is no login code")
        let other = SecretBytes(Array(repeating: 8, count: 32))
        #expect(!DeliveredCode.matches(code, record, pepper: other), "the hash is keyed")
    }

    @Test("each code has its own id, so a use names the code it was checked against")
    func ids() throws {
        let ids = try (0..<100).map { _ in try Self.make().1.id }
        #expect(Set(ids).count == 100 && ids.allSatisfy { $0 >= 0 })
    }
}
