import Testing
import TwofoldCore
@testable import TwofoldDaemon
import TwofoldStore

@Suite("What the code prompt offers by delivered codes")
struct DeliveryOfferTests {
    static let now: Int64 = 10_000_000
    static let email = Contact(channel: .email, value: "alice@example.com", addedMillis: 1, verifiedMillis: 2)
    static let phone = Contact(channel: .sms, value: "+4915112345612", addedMillis: 1, verifiedMillis: 2)
    static let waitingPhone = Contact(channel: .sms, value: "+4915112345699", addedMillis: 3)
    static let app = FactorRecord(name: "app")

    static func code(host: String = "web-1", service: String = "sshd", expires: Int64 = now + 60_000) -> DeliveredCodeRecord {
        DeliveredCodeRecord(id: 1, purpose: .login, channel: .email, destination: email.value, hash: [], digits: 6, host: host,
                            service: service, createdMillis: now - 1_000, expiresMillis: expires)
    }

    static func plan(_ record: UserRecord, _ allowed: Set<FactorKind>) -> DeliveryOffer {
        DeliveryOffer.plan(record, allowed: allowed, host: "web-1", service: "sshd", nowMillis: now)
    }

    @Test("nothing without an allowed kind and a verified contact of it")
    func nothing() {
        #expect(Self.plan(UserRecord(name: "a", factors: [Self.app]), [.totp, .email, .sms]) == .none)
        #expect(Self.plan(UserRecord(name: "a", factors: [Self.app], contacts: [Self.email]), [.totp, .recovery]) == .none)
        #expect(Self.plan(UserRecord(name: "a", factors: [Self.app], contacts: [Self.waitingPhone]), [.totp, .sms]) == .none,
                "a contact waiting for its code is no factor")
        #expect(DeliveryOffer.none.prompt == LoginDialogRunner.codePrompt)
    }

    @Test("a user with an app and an allowed contact may ask at the prompt; the answer is the channel's word")
    func fallback() {
        let offer = Self.plan(UserRecord(name: "a", factors: [Self.app], contacts: [Self.email, Self.phone]), [.totp, .email, .sms])
        #expect(offer.channels == [.email, .sms] && offer.sendNow == nil && offer.inForce == nil)
        #expect(offer.prompt.contains("\"email\" or \"sms\""))
        #expect(offer.channel(asked: " SMS ") == .sms && offer.channel(asked: "123456") == nil)
        let smsOnly = Self.plan(UserRecord(name: "a", factors: [Self.app], contacts: [Self.email, Self.phone]), [.totp, .sms])
        #expect(smsOnly.channels == [.sms] && smsOnly.channel(asked: "email") == nil, "a channel the policy does not allow here is no word")
    }

    @Test("a user with no other factor allowed here gets a code at once, unless one sent for here is still in force")
    func sendNow() {
        let record = UserRecord(name: "a", factors: [Self.app], contacts: [Self.email])
        #expect(Self.plan(record, [.email, .recovery]).sendNow == .email)
        var sent = record
        sent.deliveredCode = Self.code()
        let inForce = Self.plan(sent, [.email])
        #expect(inForce.sendNow == nil && inForce.inForce == "a***@example.com")
        #expect(inForce.prompt.hasPrefix("Enter the code sent to a***@example.com"))
        for stale in [Self.code(host: "web-2"), Self.code(service: "sudo"), Self.code(expires: Self.now)] {
            sent.deliveredCode = stale
            #expect(Self.plan(sent, [.email]).sendNow == .email, "\(stale)")
        }
    }
}
