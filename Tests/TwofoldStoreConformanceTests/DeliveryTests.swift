import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldStore

/// Contacts, delivered codes and send counts (schema v7) through the store calls and the verify
/// path. Runs against every backend.
@Suite struct DeliveryTests {
    static let alice = "alice@example.com", alice2 = "alice.2@example.com", alice3 = "alice.3@example.com"
    static let phone = "+4915112345678"
    static let policy = ThrottlePolicy(maxFailures: 3, baseDelayMillis: 1_000, maxDelayMillis: 30_000, lockDurationMillis: 60_000)

    static func withStore(_ backend: Backend, _ body: (any TwofoldStore, String) async throws -> Void) async throws {
        try await withTempDir { dir in
            let store = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            try await body(store, dir)
            try await store.close()
        }
    }

    static func waiting(_ value: String, _ channel: DeliveryChannel = .email, at millis: Int64 = 1_000) -> Contact {
        Contact(channel: channel, value: value, addedMillis: millis)
    }

    static func verified(_ value: String, _ channel: DeliveryChannel = .email, at millis: Int64 = 1_000) -> Contact {
        Contact(channel: channel, value: value, addedMillis: millis, verifiedMillis: millis)
    }

    static func code(_ id: Int64, _ purpose: DeliveryPurpose = .login, to destination: String = alice, channel: DeliveryChannel = .email,
                     expires: Int64 = 100_000) -> DeliveredCodeRecord {
        DeliveredCodeRecord(id: id, purpose: purpose, channel: channel, destination: destination,
                            hash: (0..<32).map { UInt8(truncatingIfNeeded: Int(id) &* 7 &+ $0) }, digits: 6 + Int(id % 3),
                            host: "host-\(id)", service: "sshd", createdMillis: 1_000 + id, expiresMillis: expires)
    }

    static func use(_ id: Int64, _ channel: DeliveryChannel = .email) -> FactorUse { .deliveredCode(channel: channel, id: id) }

    static func login(_ user: String, _ id: Int64, _ channel: DeliveryChannel = .email, at millis: Int64 = 5_000,
                      policy: ThrottlePolicy = policy) -> StoreMutation {
        .accept(user: user, use: use(id, channel), atMillis: millis, policy: policy)
    }

    /// The user as `user(_:)`, `loginRecord(_:setting:)` and a login reader (if the store has one)
    /// read it: the contacts and the login code the same each way.
    static func read(_ store: any TwofoldStore, _ user: String) async throws -> UserRecord? {
        let record = try await store.user(user)
        let login = try await store.loginRecord(user, setting: "policy").record
        #expect(login?.contacts == record?.contacts && login?.deliveredCode == record?.deliveredCode)
        if let reader = try store.makeLoginReader() {
            let read = try reader.loginRecord(user)
            #expect(read?.contacts == record?.contacts && read?.deliveredCode == record?.deliveredCode)
        }
        return record
    }

    @Test(arguments: Backend.all) func aVerifiedContactIsAFactorForRecoveryCodes(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            let pepper = SecretBytes(Array(repeating: 3, count: 32))
            let codes = try (0..<3).map { _ in try RecoveryCodes.makeHash(canonical: "abcd-efgh-ijkl", pepper: pepper) }
            try await store.addContact(user: "mallory", Self.waiting(Self.alice))
            await #expect(throws: StoreError.notEnrolled("mallory"), "a waiting contact is no factor") {
                try await store.replaceRecoveryCodes(user: "mallory", codes: codes)
            }
            try await store.addContact(user: "ivy", Self.verified(Self.phone, .sms))
            try await store.replaceRecoveryCodes(user: "ivy", codes: codes)
            #expect(try await store.recoveryCodes(user: "ivy").count == 3)
        }
    }

    @Test(arguments: Backend.all) func contactsAreOneVerifiedAndOneWaitingPerChannelAndComeWithTheUser(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            // A waiting contact makes the user known (a row), not enrolled.
            try await store.addContact(user: "alice", Self.waiting(Self.alice, at: 10))
            var alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Self.waiting(Self.alice, at: 10)] && !alice.hasFactor && alice.status == nil && alice.deliveredCode == nil)
            // Another waiting one replaces it; confirming it with its code makes it a factor.
            try await store.addContact(user: "alice", Self.waiting(Self.alice2, at: 20))
            #expect(try await Self.read(store, "alice")?.contacts == [Self.waiting(Self.alice2, at: 20)])
            try await store.storeDeliveredCode(user: "alice", Self.code(1, .contact, to: Self.alice2))
            #expect(try await store.confirmContact(user: "alice", channel: .email, value: Self.alice2, codeID: 1, atMillis: 30))
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice2, codeID: 1, atMillis: 31))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Contact(channel: .email, value: Self.alice2, addedMillis: 20, verifiedMillis: 30)])
            #expect(alice.status == .active && alice.kinds == [.email] && alice.verifiedContact(.email)?.value == Self.alice2)
            #expect(alice.factors.isEmpty && alice.verifiedContact(.sms) == nil)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == nil)

            // Beside the verified one, one waiting per channel; in channel, then address order.
            try await store.addContact(user: "alice", Self.waiting(Self.alice3, at: 40))
            try await store.addContact(user: "alice", Self.waiting(Self.phone, .sms, at: 41))
            // The address already verified, added as waiting, changes nothing.
            try await store.addContact(user: "alice", Self.waiting(Self.alice2, at: 42))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Contact(channel: .email, value: Self.alice2, addedMillis: 20, verifiedMillis: 30),
                                       Self.waiting(Self.alice3, at: 40), Self.waiting(Self.phone, .sms, at: 41)])
            #expect(alice.kinds == [.email])

            // Confirming the waiting one replaces the verified one, and resets the failures.
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 50, policy: Self.policy)])
            try await store.storeDeliveredCode(user: "alice", Self.code(2, .contact, to: Self.alice3))
            #expect(try await store.confirmContact(user: "alice", channel: .email, value: Self.alice3, codeID: 2, atMillis: 60))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Contact(channel: .email, value: Self.alice3, addedMillis: 40, verifiedMillis: 60),
                                       Self.waiting(Self.phone, .sms, at: 41)])
            #expect(alice.throttle == ThrottleState())

            // A login code comes with the user, whichever way it is read; a contact code does not.
            try await store.storeDeliveredCode(user: "alice", Self.code(3, to: Self.alice3))
            try await store.storeDeliveredCode(user: "alice", Self.code(4, .contact, to: Self.phone, channel: .sms))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.deliveredCode == Self.code(3, to: Self.alice3))
            #expect(try await store.deliveredCode(user: "alice", purpose: .login) == Self.code(3, to: Self.alice3))
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == Self.code(4, .contact, to: Self.phone, channel: .sms))

            // An admin's verified contact replaces both of its channel, and the code sent to the old one.
            try await store.addContact(user: "alice", Self.verified(Self.alice, at: 70))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Self.verified(Self.alice, at: 70), Self.waiting(Self.phone, .sms, at: 41)])
            #expect(alice.deliveredCode == nil)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) != nil)
            // Removing a contact takes the code sent to it too.
            #expect(try await store.removeContact(user: "alice", channel: .sms, value: "+4915100000000") == 0)
            #expect(try await store.removeContact(user: "alice", channel: .sms, value: nil) == 1)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == nil)
            #expect(try await Self.read(store, "alice")?.contacts == [Self.verified(Self.alice, at: 70)])
            #expect(try await store.removeContact(user: "alice", channel: .email, value: Self.alice) == 1)
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts.isEmpty && alice.status == nil)
            #expect(try await store.removeContact(user: "nobody", channel: .email, value: nil) == 0)
            #expect(try await store.user("nobody") == nil)
        }
    }

    @Test(arguments: Backend.all) func anAddressNotInItsNormalisedFormIsRefused(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            try await store.addContact(user: "alice", Self.verified(Self.alice))
            let before = try await backend.fingerprint(dir)
            for contact in [Self.waiting("Alice@Example.COM"), Self.waiting("+49 151 12345678", .sms), Self.waiting("not an address"),
                            Self.waiting(Self.alice, .sms)] {
                await #expect(throws: StoreError.self) { try await store.addContact(user: "bob", contact) }
            }
            #expect(try await backend.fingerprint(dir) == before)
            #expect(try await store.user("bob") == nil)
        }
    }

    @Test(arguments: Backend.all) func confirmingNeedsTheCodeStillSentToTheContactStillThere(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            try await store.addContact(user: "alice", Self.waiting(Self.alice))
            // A replaced code no longer confirms; the one that replaced it does.
            try await store.storeDeliveredCode(user: "alice", Self.code(1, .contact))
            try await store.storeDeliveredCode(user: "alice", Self.code(2, .contact))
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice, codeID: 1, atMillis: 10))
            // A login code of that id is not a contact code.
            try await store.storeDeliveredCode(user: "alice", Self.code(5))
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice, codeID: 5, atMillis: 10))
            // Not another channel's, nor another address's, nor another user's.
            #expect(try await !store.confirmContact(user: "alice", channel: .sms, value: Self.alice, codeID: 2, atMillis: 10))
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice2, codeID: 2, atMillis: 10))
            #expect(try await !store.confirmContact(user: "bob", channel: .email, value: Self.alice, codeID: 2, atMillis: 10))
            #expect(try await Self.read(store, "alice")?.contacts == [Self.waiting(Self.alice)])
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact)?.id == 2)
            #expect(try await store.confirmContact(user: "alice", channel: .email, value: Self.alice, codeID: 2, atMillis: 10))
            #expect(try await store.deliveredCode(user: "alice", purpose: .login)?.id == 5)

            // A code sent to an address the user no longer has: the address went, and the code with it.
            try await store.addContact(user: "alice", Self.waiting(Self.alice2))
            try await store.storeDeliveredCode(user: "alice", Self.code(3, .contact, to: Self.alice2))
            #expect(try await store.removeContact(user: "alice", channel: .email, value: Self.alice2) == 1)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == nil)
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice2, codeID: 3, atMillis: 20))
            // A code to an address that was never added confirms nothing.
            try await store.storeDeliveredCode(user: "alice", Self.code(4, .contact, to: Self.alice3))
            #expect(try await !store.confirmContact(user: "alice", channel: .email, value: Self.alice3, codeID: 4, atMillis: 20))
            #expect(try await Self.read(store, "alice")?.contacts == [Contact(channel: .email, value: Self.alice, addedMillis: 1_000, verifiedMillis: 10)])
        }
    }

    @Test(arguments: Backend.all) func aDeliveredCodeLogsInOnceAndOnlyWhileItIsTheUsersCode(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            try await store.addContact(user: "alice", Self.verified(Self.alice))
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 100, policy: Self.policy)])
            try await store.storeDeliveredCode(user: "alice", Self.code(42))
            // Once: it logs in (failures reset, the success recorded), then it is gone.
            #expect(try await store.commit([Self.login("alice", 42, at: 5_000)]) == [.applied])
            var alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.deliveredCode == nil && alice.throttle == ThrottleState() && alice.lastSuccessMillis == 5_000)
            #expect(try await store.commit([Self.login("alice", 42, at: 5_100)]) == [.conflict])
            #expect(try await store.user("alice")?.lastSuccessMillis == 5_000)

            // A replaced code conflicts; so does another channel's, a contact code's id, another user's.
            try await store.storeDeliveredCode(user: "alice", Self.code(1))
            try await store.storeDeliveredCode(user: "alice", Self.code(2))
            try await store.storeDeliveredCode(user: "alice", Self.code(3, .contact, to: Self.alice2))
            #expect(try await store.commit([Self.login("alice", 1)]) == [.conflict])
            #expect(try await store.commit([Self.login("alice", 2, .sms)]) == [.conflict])
            #expect(try await store.commit([Self.login("alice", 3)]) == [.conflict])
            #expect(try await store.commit([Self.login("bob", 2)]) == [.conflict])
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact)?.id == 3)
            // The same code twice in one batch: the first takes it; a refused attempt's audit says so.
            let audit = AuditRecord(timeMillis: 6_000, action: "verify", user: "alice", outcome: "success")
            let results = try await store.commit([Self.login("alice", 2, at: 6_000), .auditAttempt(audit),
                                                  Self.login("alice", 2, at: 6_001), .auditAttempt(audit)])
            #expect(results == [.applied, .applied, .conflict, .applied])
            #expect(try await store.audit(AuditQuery(user: "alice")).map(\.outcome) == ["success", "failure"])
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.deliveredCode == nil && alice.lastSuccessMillis == 6_000)

            // Consumed without a login: gone, and neither the throttle nor the last success change.
            try await store.storeDeliveredCode(user: "alice", Self.code(7))
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: 6_500, policy: Self.policy)])
            #expect(try await store.commit([.consume(user: "alice", use: Self.use(7))]) == [.applied])
            #expect(try await store.commit([.consume(user: "alice", use: Self.use(7))]) == [.conflict])
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.deliveredCode == nil && alice.throttle.failures == 1 && alice.lastSuccessMillis == 6_000)
        }
    }

    @Test(arguments: Backend.all) func aDeliveredCodeRefusedByTheThrottleIsUsedUpAndCounted(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            try await store.addContact(user: "alice", Self.verified(Self.alice))
            try await store.storeDeliveredCode(user: "alice", Self.code(9))
            let t0: Int64 = 1_700_000_000_000
            // A failure sets a delay: the right code committed inside it is refused, counted and gone.
            _ = try await store.commit([.recordFailure(user: "alice", atMillis: t0, policy: Self.policy)])
            let refused = try await store.commit([Self.login("alice", 9, at: t0 + 10)])
            guard case .throttled(let state)? = refused.first else {
                Issue.record("expected .throttled, got \(refused)")
                return
            }
            #expect(state.failures == 2)
            let alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.deliveredCode == nil && alice.throttle.failures == 2 && alice.lastSuccessMillis == nil)
            #expect(try await store.commit([Self.login("alice", 9, at: t0 + 60_000)]) == [.conflict])
        }
    }

    @Test(arguments: Backend.all) func deliveredCodesInABatchWithTOTPLogins(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            // The PostgreSQL batch takes TOTP and HOTP logins in bulk and the rest one by one.
            for user in ["alice", "bob", "carol"] {
                try await enroll(store, user)
                try await store.addContact(user: user, Self.verified("\(user)@example.com"))
                try await store.storeDeliveredCode(user: user, Self.code(Int64(user.count), to: "\(user)@example.com"))
            }
            let results = try await store.commit([accept("bob", step: 10), Self.login("alice", 5), accept("carol", step: 11),
                                                  Self.login("bob", 3), Self.login("carol", 4)])
            #expect(results == [.applied, .applied, .applied, .applied, .conflict])
            for user in ["alice", "bob"] { #expect(try await store.user(user)?.deliveredCode == nil) }
            #expect(try await store.user("carol")?.deliveredCode?.id == 5)
        }
    }

    @Test(arguments: Backend.all) func revokeTakesContactsAndCodesAndRemovingTheLastOTPFactorKeepsRecoveryWhileAContactIsVerified(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let keys = try makeKeys(in: dir)
            let store = try await backend.makeStore(directory: dir, keys: keys)
            let code = try RecoveryCodes.makeHash(canonical: "abcdefghjk", pepper: keys.recoveryPepper)
            try await enroll(store, "alice", codes: [code, code])
            try await store.addContact(user: "alice", Self.verified(Self.alice))
            try await store.addContact(user: "alice", Self.waiting(Self.phone, .sms))
            try await store.storeDeliveredCode(user: "alice", Self.code(1))
            try await store.beginEnrollment(user: "alice", factor: "tablet", secret: try SecretBytes(randomCount: 20), parameters: OTPParameters(), atMillis: 5)
            // The verified contact is still a second factor: recovery codes and the pending enrollment stay.
            #expect(try await store.removeFactor(user: "alice", name: FactorName.first))
            var alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.factors.isEmpty && alice.status == .active && alice.recoveryCodesLeft == 2 && alice.pendingFactor == "tablet")
            #expect(alice.contacts.count == 2 && alice.deliveredCode?.id == 1)

            // Revoking takes everything, contacts and codes included; the send records stay.
            try await store.recordSend(DeliverySend(timeMillis: 10, user: "alice", channel: .email, destination: Self.alice, host: "h"))
            #expect(try await store.revoke(user: "alice"))
            alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts.isEmpty && alice.deliveredCode == nil && alice.status == nil && alice.recoveryCodesLeft == 0)
            #expect(alice.pendingFactor == nil)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == nil)
            #expect(try await !store.revoke(user: "alice"))
            #expect(try await store.sendCounts(user: "alice", destination: Self.alice, host: "h", since: 0) == DeliverySendCounts(user: 1, destination: 1, host: 1))

            // Contacts or a code alone are something to revoke.
            try await store.addContact(user: "bob", Self.waiting("bob@example.com"))
            #expect(try await store.revoke(user: "bob"))
            try await store.storeDeliveredCode(user: "carol", Self.code(2, .contact, to: "carol@example.com"))
            #expect(try await store.revoke(user: "carol"))
            #expect(try await store.deliveredCode(user: "carol", purpose: .contact) == nil)

            // Without a verified contact, removing the last factor takes the recovery codes as before.
            try await enroll(store, "dave", codes: [code])
            try await store.addContact(user: "dave", Self.waiting("dave@example.com"))
            #expect(try await store.removeFactor(user: "dave", name: FactorName.first))
            let dave = try #require(try await store.user("dave"))
            #expect(dave.recoveryCodesLeft == 0 && dave.status == nil && dave.contacts == [Self.waiting("dave@example.com")])
            try await store.close()
        }
    }

    @Test(arguments: Backend.all) func importIsAllOrNoneAndTheLastOfAChannelWins(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            try await store.addContact(user: "alice", Self.waiting(Self.alice3))
            try await store.storeDeliveredCode(user: "alice", Self.code(1, .contact, to: Self.alice3))
            try await store.addContact(user: "erin", Self.verified("erin@example.com"))
            try await store.importContacts([])

            // Each refused row refuses the whole import: a bad address, one not verified.
            let good = (0..<20).map { UserContact(user: "bulk\($0)", contact: Self.verified("bulk\($0)@example.com")) }
            let before = try await backend.fingerprint(dir)
            for bad in [UserContact(user: "zed", contact: Self.verified("Zed@Example.com")),
                        UserContact(user: "zed", contact: Self.verified("+0123456789", .sms)),
                        UserContact(user: "zed", contact: Self.waiting("zed@example.com"))] {
                await #expect(throws: StoreError.self) { try await store.importContacts(good + [bad] + good) }
                #expect(try await backend.fingerprint(dir) == before)
            }
            #expect(try await store.user("bulk0") == nil)
            #expect(try await store.user("zed") == nil)
            // A row the database refuses (a user row it cannot insert) leaves nothing either.
            try await backend.fault(dir, store, .failUser(name: "bad"))
            await #expect(throws: StoreError.self) {
                try await store.importContacts(good + [UserContact(user: "bad", contact: Self.verified("bad@example.com"))])
            }
            #expect(try await store.user("bulk0") == nil)
            #expect(try await store.user("bulk19") == nil)
            #expect(try await store.listContacts(after: nil, limit: 1_000).map(\.user) == ["alice", "erin"])

            // As added one by one: the last of a user and channel wins and replaces what was there
            // (a code sent to a replaced address goes with it); other channels and users are left.
            try await store.importContacts(good + [
                UserContact(user: "alice", contact: Self.verified(Self.alice, at: 5)),
                UserContact(user: "alice", contact: Self.verified(Self.phone, .sms, at: 6)),
                UserContact(user: "alice", contact: Self.verified(Self.alice2, at: 7)),
            ])
            let alice = try #require(try await Self.read(store, "alice"))
            #expect(alice.contacts == [Self.verified(Self.alice2, at: 7), Self.verified(Self.phone, .sms, at: 6)])
            #expect(alice.kinds == [.email, .sms])
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact) == nil)
            #expect(try await store.user("bulk19")?.contacts == [Self.verified("bulk19@example.com")])
            #expect(try await store.user("erin")?.contacts == [Self.verified("erin@example.com")])
            // Imported again: the same contacts, times replaced.
            try await store.importContacts([UserContact(user: "alice", contact: Self.verified(Self.alice2, at: 8))])
            #expect(try await store.user("alice")?.contacts == [Self.verified(Self.alice2, at: 8), Self.verified(Self.phone, .sms, at: 6)])
            // Durable: a reopened store has them.
            let reopened = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            #expect(try await reopened.listContacts(after: nil, limit: 1_000).count == 23)
            try await reopened.close()
        }
    }

    @Test(arguments: Backend.all) func listingContactsPagesWholeUsers(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, _ in
            // u0 has 4 contacts, u1 1, u2 3, u3 none (a row only), u4 2, …
            let counts = [4, 1, 3, 0, 2, 1, 4, 2, 1, 3]
            var all: [UserContact] = []
            for (i, count) in counts.enumerated() {
                let user = "u\(i)"
                try await store.setRequirement(user: user, .policy)
                let contacts = [Self.verified("\(user)@example.com"), Self.waiting("\(user).new@example.com"),
                                Self.verified("+491511234560\(i)", .sms), Self.waiting("+491511234561\(i)", .sms)].prefix(count)
                for contact in contacts { try await store.addContact(user: user, contact) }
                all += contacts.sorted { ($0.channel.rawValue, $0.value) < ($1.channel.rawValue, $1.value) }
                    .map { UserContact(user: user, contact: $0) }
            }
            #expect(try await store.listContacts(after: nil, limit: 1_000) == all)
            for limit in [1, 2, 3, 4, 5, 7] {
                var pages: [[UserContact]] = []
                var after: String?
                while true {
                    let page = try await store.listContacts(after: after, limit: limit)
                    if page.isEmpty { break }
                    pages.append(page)
                    after = page.last?.user
                    #expect(pages.count <= all.count, "limit \(limit): no progress")
                    if pages.count > all.count { break }
                }
                #expect(pages.flatMap { $0 } == all, "limit \(limit)")
                for page in pages {
                    let users = Set(page.map(\.user))
                    // Within the limit, unless it is one user whose contacts are more.
                    #expect(page.count <= limit || users.count == 1, "limit \(limit): \(page)")
                    for user in users { #expect(page.filter { $0.user == user }.count == all.filter { $0.user == user }.count) }
                }
            }
            #expect(try await store.listContacts(after: "u9", limit: 10).isEmpty)
            #expect(try await store.listContacts(after: nil, limit: 0).isEmpty)
            #expect(try await store.listContacts(after: "u5", limit: 3).map(\.user) == ["u6", "u6", "u6", "u6"])

            // Users' listings carry their contacts too (not the login code).
            try await store.storeDeliveredCode(user: "u1", Self.code(1, to: "u1@example.com"))
            let users = try await store.listUsers(after: nil, limit: 100)
            #expect(users.map(\.name) == counts.indices.map { "u\($0)" })
            for user in users {
                #expect(user.contacts == all.filter { $0.user == user.name }.map(\.contact))
                #expect(user.deliveredCode == nil)
            }
            #expect(try await store.listUsers(after: "u4", limit: 2).map { $0.contacts.count } == [1, 4])
        }
    }

    @Test(arguments: Backend.all) func sendCountsAndPruning(_ backend: Backend) async throws {
        try await Self.withStore(backend) { store, dir in
            let sends = [
                DeliverySend(timeMillis: 100, user: "alice", channel: .email, destination: Self.alice, host: "h1"),
                DeliverySend(timeMillis: 150, user: "alice", channel: .sms, destination: Self.phone, host: "h2"),
                DeliverySend(timeMillis: 200, user: "alice", channel: .email, destination: Self.alice, host: "h1"),
                DeliverySend(timeMillis: 250, user: "bob", channel: .email, destination: Self.alice, host: "h2"),
                DeliverySend(timeMillis: 300, user: "alice", channel: .email, destination: Self.alice, host: "h1"),
                DeliverySend(timeMillis: 300, user: "carol", channel: .email, destination: "carol@example.com", host: "h1"),
            ]
            for send in sends { try await store.recordSend(send) }
            func counts(_ user: String, _ destination: String, _ host: String, since: Int64) async throws -> [Int] {
                let c = try await store.sendCounts(user: user, destination: destination, host: host, since: since)
                return [c.user, c.destination, c.host]
            }
            #expect(try await counts("alice", Self.alice, "h1", since: 0) == [4, 4, 4])
            // The window starts at `since`, inclusive.
            #expect(try await counts("alice", Self.alice, "h1", since: 200) == [2, 3, 3])
            #expect(try await counts("alice", Self.alice, "h2", since: 201) == [1, 2, 1])
            #expect(try await counts("bob", Self.phone, "h2", since: 0) == [1, 1, 2])
            #expect(try await counts("nobody", "nobody@example.com", "h9", since: 0) == [0, 0, 0])
            #expect(try await counts("alice", Self.alice, "h1", since: 301) == [0, 0, 0])

            // Pruning: sends before the time, and codes (of either purpose) that expired before it.
            try await store.storeDeliveredCode(user: "alice", Self.code(1, expires: 150))
            try await store.storeDeliveredCode(user: "alice", Self.code(2, .contact, expires: 200))
            try await store.storeDeliveredCode(user: "bob", Self.code(3, .contact, to: "bob@example.com", expires: 199))
            #expect(try await store.pruneDeliveries(before: 200) == 2 + 2)
            #expect(try await counts("alice", Self.alice, "h1", since: 0) == [2, 3, 3])
            #expect(try await store.deliveredCode(user: "alice", purpose: .login) == nil)
            #expect(try await store.deliveredCode(user: "alice", purpose: .contact)?.id == 2)
            #expect(try await store.deliveredCode(user: "bob", purpose: .contact) == nil)
            #expect(try await store.pruneDeliveries(before: 200) == 0)

            // Durable: a reopened store counts the same.
            let reopened = try await backend.makeStore(directory: dir, keys: try makeKeys(in: dir))
            let c = try await reopened.sendCounts(user: "alice", destination: Self.alice, host: "h1", since: 0)
            #expect(c == DeliverySendCounts(user: 2, destination: 3, host: 3))
            #expect(try await reopened.pruneDeliveries(before: 10_000) == 4 + 1)
            try await reopened.close()
        }
    }
}
