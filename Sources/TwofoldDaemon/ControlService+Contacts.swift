import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// Contacts (an email address, a phone number) and the codes sent to them. A contact is a factor
/// once confirmed with the code sent to it; adding or removing one needs a current factor of the
/// user (malware in a session must not add its own phone as the way in), or an admin.
extension ControlService {
    /// The service name a delivered code for twofoldctl's own requests is bound to.
    static let cliService = "twofoldctl"

    func addContact(_ user: String, channel name: String, value: String, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let channel = try Self.channel(name)
        let address: String
        do { address = try ContactAddress.normalize(value, channel: channel) } catch let invalid as ContactAddress.Invalid {
            throw ControlFailure(.invalidRequest, invalid.description)
        }
        let record = try await store.user(user)
        if !admin {
            let current = policy.current
            let allowedSomewhere = current.kindsAllowedAnywhere.union(record?.factorKinds ?? [])
            guard allowedSomewhere.contains(channel.factorKind) else {
                throw ControlFailure(.permissionDenied, "codes by \(channel.noun) are off: the policy allows no \(channel.rawValue) factor; ask your administrator")
            }
            if record?.hasFactor != true {
                let (required, _) = current.requirement(user: user, service: nil, host: HostName.local, override: record?.requirement ?? .policy)
                if !required && !current.document.selfEnrollment {
                    throw ControlFailure(.permissionDenied, "policy does not let users turn on 2FA themselves; ask an administrator")
                }
            }
        }
        if !admin, record?.hasFactor == true {
            guard let code else { throw ControlFailure(.invalidRequest, "give a current code of one of your factors to add a contact (twofoldctl contact send-code sends one to a verified contact)") }
            try await requireCurrentCode(code, user: user, peer: peer, purpose: "contact")
        }
        let now = clock.nowMillis()
        try await store.addContact(user: user, Contact(channel: channel, value: address, addedMillis: now))
        let masked = ContactAddress.masked(address, channel: channel)
        await audit("contact", user: user, peer: peer, outcome: "pending", reason: "\(channel.rawValue) \(masked) added; code sent to confirm it")
        let sent = await delivery.send(CodeDelivery.Request(
            user: user, channel: channel, destination: address, purpose: .contact, host: peer.relayed?.host ?? HostName.local,
            service: Self.cliService, audit: AuditRecord(timeMillis: now, action: "send", user: user, peerUID: peer.uid, outcome: "", host: peer.relayed?.host),
            waitMillis: 8_000))
        switch sent {
        case .sent:
            return .contactCodeSent(ContactInfo(user: user, channel: channel.rawValue, masked: masked, verified: false, addedMillis: now,
                                                codeValidSeconds: live.current.delivery.codeValiditySeconds))
        case .limited(let text), .failed(let text):
            throw ControlFailure(.unavailable, "the contact is added but waits for its code: \(text)")
        }
    }

    func verifyContact(_ user: String, code: String, peer: PeerCredentials) async throws -> ControlResponse {
        let context = LoginContext(user: user, service: Self.cliService + ":contact verify", peer: peer)
        guard let record = try await store.user(user), let sent = try await store.deliveredCode(user: user, purpose: .contact),
              let contact = record.contacts.first(where: { $0.channel == sent.channel && $0.value == sent.destination && !$0.isVerified }) else {
            throw ControlFailure(.notFound, "no contact of '\(user)' is waiting for its code; add one with: twofoldctl contact add")
        }
        if case .locked = Throttle.admit(record.throttle, nowMillis: clock.nowMillis(), policy: policy.current.throttlePolicy) {
            throw ControlFailure(.locked, "too many failed attempts: the account is locked for now")
        }
        let now = clock.nowMillis()
        let right = DeliveredCode.matches(code, sent, pepper: recoveryPepper)
        guard right, now < sent.expiresMillis else {
            let reason = right ? "contact code expired" : "wrong contact code"
            _ = await authenticator.commit([.recordFailure(user: user, atMillis: now, policy: policy.current.throttlePolicy),
                                            authenticator.auditMutation(context, outcome: "failure", reason: reason, at: now, action: "contact")])
            throw ControlFailure(.invalidCode, right ? "that code has expired: add the contact again for a new one" : "that code is not the one sent")
        }
        guard try await store.confirmContact(user: user, channel: contact.channel, value: contact.value, codeID: sent.id, atMillis: now) else {
            throw ControlFailure(.invalidCode, "that code was replaced or used meanwhile")
        }
        await audit("contact", user: user, peer: peer, outcome: "success", reason: "\(contact.channel.rawValue) \(contact.masked) verified")
        return .ok
    }

    func removeContact(_ user: String, channel name: String, value: String?, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        let channel = try Self.channel(name)
        let address = try value.map { value in
            do { return try ContactAddress.normalize(value, channel: channel) } catch let invalid as ContactAddress.Invalid {
                throw ControlFailure(.invalidRequest, invalid.description)
            }
        }
        guard let record = try await store.user(user),
              record.contacts.contains(where: { $0.channel == channel && (address == nil || $0.value == address) }) else {
            throw ControlFailure(.notFound, "'\(user)' has no \(channel.rawValue) contact\(address.map { " \(ContactAddress.masked($0, channel: channel))" } ?? "")")
        }
        if !admin {
            var after = record
            after.contacts.removeAll { $0.channel == channel && (address == nil || $0.value == address) }
            let (required, because) = policy.current.requirement(user: user, service: nil, host: HostName.local, override: record.requirement)
            if required && record.hasFactor && !after.hasFactor {
                throw ControlFailure(.permissionDenied, "that contact is the last factor and 2FA is required for '\(user)' (\(because))")
            }
            if record.hasFactor {
                guard let code else { throw ControlFailure(.invalidRequest, "give a current code of one of your factors to remove a contact") }
                try await requireCurrentCode(code, user: user, peer: peer, purpose: "contact")
            }
        }
        let removed = try await store.removeContact(user: user, channel: channel, value: address)
        await audit("contact", user: user, peer: peer, outcome: "success",
                    reason: "\(removed) \(channel.rawValue) contact\(removed == 1 ? "" : "s") removed\(address.map { " (\(ContactAddress.masked($0, channel: channel)))" } ?? "")")
        return .ok
    }

    func contacts(of user: String) async throws -> [ContactInfo] {
        (try await store.user(user))?.contacts.map { Self.info(user, $0) } ?? []
    }

    func allContacts() async throws -> [ContactInfo] {
        var result: [ContactInfo] = []
        var after: String?
        while true {
            let page = try await store.listContacts(after: after, limit: 1_000)
            result += page.map { Self.info($0.user, $0.contact) }
            guard page.count >= 1_000, let last = page.last else { return result }
            after = last.user
        }
    }

    /// Verified contacts from an admin's file, each item on its own: a bad line is reported and the rest go in.
    func importContacts(_ items: [ContactImport], peer: PeerCredentials) async throws -> ControlResponse {
        guard items.count <= ControlLimits.maxImportsPerRequest else {
            throw ControlFailure(.invalidRequest, "at most \(ControlLimits.maxImportsPerRequest) contacts per request")
        }
        var outcomes: [ImportOutcome] = []
        var accepted: [UserContact] = []
        let now = clock.nowMillis()
        for item in items {
            do {
                guard LoginDialogRunner.isPlausibleName(item.user), item.user.utf8.count <= 256 else { throw ContactAddress.Invalid("invalid user name") }
                let channel = try Self.channel(item.channel)
                let address = try ContactAddress.normalize(item.value, channel: channel)
                accepted.append(UserContact(user: item.user, contact: Contact(channel: channel, value: address, addedMillis: now, verifiedMillis: now)))
                outcomes.append(ImportOutcome(user: item.user, recoveryCodes: 0))
            } catch let invalid as ContactAddress.Invalid {
                outcomes.append(ImportOutcome(user: item.user, error: invalid.description))
            } catch let failure as ControlFailure {
                outcomes.append(ImportOutcome(user: item.user, error: failure.message))
            }
        }
        if !accepted.isEmpty {
            try await store.importContacts(accepted)
            for item in accepted {
                await audit("contact", user: item.user, peer: peer, outcome: "success",
                            reason: "\(item.contact.channel.rawValue) \(item.contact.masked) imported as verified by an admin")
            }
        }
        return .importedMany(outcomes)
    }

    /// A login code for twofoldctl's own requests (adding or removing a contact, a factor) for a
    /// user whose only factors are contacts.
    func sendCode(_ user: String, channel name: String?, peer: PeerCredentials) async throws -> ControlResponse {
        guard let record = try await store.user(user), record.hasFactor else { throw ControlFailure(.notFound, "'\(user)' has no verified contact") }
        let host = peer.relayed?.host ?? HostName.local
        let allowed = policy.current.allowedKinds(user: record.factorKinds, service: Self.cliService, host: host).kinds
        let usable = DeliveryChannel.allCases.filter { allowed.contains($0.factorKind) && record.verifiedContact($0) != nil }
        let channel = try name.map(Self.channel) ?? usable.first
        guard let channel, usable.contains(channel), let contact = record.verifiedContact(channel) else {
            throw ControlFailure(.notFound, "'\(user)' has no verified contact to send a code to that the policy allows here")
        }
        let now = clock.nowMillis()
        let sent = await delivery.send(CodeDelivery.Request(
            user: user, channel: channel, destination: contact.value, purpose: .login, host: host, service: Self.cliService,
            audit: AuditRecord(timeMillis: now, action: "send", user: user, service: Self.cliService, peerUID: peer.uid, outcome: "", host: peer.relayed?.host),
            waitMillis: 8_000))
        switch sent {
        case .sent(let code, let masked):
            return .contactCodeSent(ContactInfo(user: user, channel: channel.rawValue, masked: masked, verified: true, addedMillis: contact.addedMillis,
                                                verifiedMillis: contact.verifiedMillis, codeValidSeconds: Int((code.expiresMillis - code.createdMillis) / 1000)))
        case .limited(let text), .failed(let text):
            throw ControlFailure(.unavailable, text)
        }
    }

    /// For doctor: the channels the policy allows anywhere, and whether the delivery service takes
    /// connections (probed only when one is allowed). A relay sends nothing itself.
    func deliveryInfo(_ configuration: DaemonConfiguration) async -> DeliveryInfo? {
        guard configuration.fleet.role != .relay else { return nil }
        let kinds = policy.current.kindsAllowedAnywhere
        let channels = DeliveryChannel.allCases.filter { kinds.contains($0.factorKind) }
        let socket = configuration.delivery.socketPath
        let error = channels.isEmpty ? nil : await DeliveryClient(socketPath: socket).probe()
        return DeliveryInfo(allowedChannels: channels.map(\.rawValue), socket: socket, error: error)
    }

    static func channel(_ name: String) throws -> DeliveryChannel {
        switch name.lowercased() {
        case "email": return .email
        case "sms", "phone": return .sms
        default: throw ControlFailure(.invalidRequest, "a contact is 'email' or 'sms' (a phone number)")
        }
    }

    static func info(_ user: String, _ contact: Contact) -> ContactInfo {
        ContactInfo(user: user, channel: contact.channel.rawValue, masked: contact.masked, verified: contact.isVerified,
                    addedMillis: contact.addedMillis, verifiedMillis: contact.verifiedMillis)
    }
}
