import Foundation
import Logging
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// Sends delivered codes: checks the send limits, stores the new code (hashed, durably, replacing
/// the user's previous one of its purpose) before it goes out, hands the message to the delivery
/// service, and records and audits the send. A send limit or a failed send only says so: it never
/// counts as a failure of the user, so it locks nobody out of their other factors.
final class CodeDelivery: Sendable {
    let store: any TwofoldStore
    let authenticator: Authenticator
    let clock: any WallClock
    let pepper: SecretBytes
    let settings: @Sendable () -> DeliveryConfiguration
    let policy: PolicyHolder
    let logger: Logger

    init(store: any TwofoldStore, authenticator: Authenticator, clock: any WallClock, pepper: SecretBytes, policy: PolicyHolder,
         logger: Logger, settings: @escaping @Sendable () -> DeliveryConfiguration) {
        self.store = store
        self.authenticator = authenticator
        self.clock = clock
        self.pepper = pepper
        self.policy = policy
        self.logger = logger
        self.settings = settings
    }

    /// What became of a send.
    enum Outcome: Sendable {
        /// Handed to the gateway; the stored code (its hash) and where it went, masked.
        case sent(DeliveredCodeRecord, masked: String)
        /// A send limit is reached; the text is for the user.
        case limited(String)
        /// Not sent; the text is for the user (the admin's detail went to the log and the audit).
        case failed(String)
    }

    /// What a send is for, and where the request came from (for the binding and the audit).
    struct Request: Sendable {
        var user: String
        var channel: DeliveryChannel
        var destination: String
        var purpose: DeliveryPurpose
        /// The login's host and service (a contact's code: this host, "twofoldctl").
        var host: String
        var service: String
        /// The audit record's fields other than outcome and reason.
        var audit: AuditRecord
        /// How long the caller can wait for the outcome (the client's deadline less a margin).
        var waitMillis: Int64
    }

    func send(_ request: Request) async -> Outcome {
        let settings = self.settings()
        let now = clock.nowMillis()
        let masked = ContactAddress.masked(request.destination, channel: request.channel)
        let to = "\(request.channel.rawValue) to \(masked)"
        do {
            let counts = try await store.sendCounts(user: request.user, destination: request.destination, host: request.host,
                                                    since: now - DeliveryConfiguration.limitWindowMillis)
            if let limit = Self.limitReached(counts, settings) {
                await audit(request, outcome: "limited", reason: "\(to) not sent: \(limit)")
                return .limited("Too many codes were sent recently; no new one is sent now. Use a code already sent, another factor or a recovery code, or try again later.")
            }
            let digits = policy.current.document.deliveredCodeDigits
            let (code, record) = try DeliveredCode.make(purpose: request.purpose, channel: request.channel, destination: request.destination,
                                                        digits: digits, host: request.host, service: request.service, nowMillis: now,
                                                        validityMillis: Int64(settings.codeValiditySeconds) * 1000, pepper: pepper)
            // Stored before it goes out: a code the user reads must already work.
            try await store.storeDeliveredCode(user: request.user, record)
            try await store.recordSend(DeliverySend(timeMillis: now, user: request.user, channel: request.channel,
                                                    destination: request.destination, host: request.host))
            let message = Self.message(code: code, request: request, validitySeconds: settings.codeValiditySeconds)
            let wire = DeliveryRequest(channel: request.channel.rawValue, user: request.user, destination: request.destination,
                                       subject: request.purpose == .login ? "Your login code" : "Confirm your contact for two-factor login",
                                       message: message, code: code)
            let client = DeliveryClient(socketPath: settings.socketPath)
            let response: DeliveryResponse
            do {
                response = try await client.send(wire, timeoutMillis: min(Int64(settings.timeoutMillis), request.waitMillis))
            } catch {
                logger.error("delivery failed", metadata: ["user": "\(request.user)", "channel": "\(request.channel.rawValue)", "error": "\(error)"])
                await audit(request, outcome: "failed", reason: "\(to): \(error)")
                return .failed("The code could not be sent by \(request.channel.noun). Try again later, or use another factor.")
            }
            guard response.sent else {
                let detail = Self.sanitized(response.detail ?? "", code: code, destination: request.destination, masked: masked)
                logger.error("delivery failed", metadata: ["user": "\(request.user)", "channel": "\(request.channel.rawValue)",
                                                          "outcome": "\(response.outcome)", "detail": "\(detail)"])
                await audit(request, outcome: "failed", reason: "\(to): \(response.outcome)\(detail.isEmpty ? "" : ": \(detail)")")
                return .failed("The code could not be sent by \(request.channel.noun). Try again later, or use another factor.")
            }
            await audit(request, outcome: "sent", reason: "\(request.purpose == .login ? "login code" : "contact code"), \(to)")
            return .sent(record, masked: masked)
        } catch {
            logger.error("cannot send a code", metadata: ["user": "\(request.user)", "error": "\(Authenticator.reason(error))"])
            await audit(request, outcome: "error", reason: "\(to): store: \(Authenticator.reason(error))")
            return .failed("The code could not be sent now. Try again later, or use another factor.")
        }
    }

    /// Which limit a send would pass, if any.
    static func limitReached(_ counts: DeliverySendCounts, _ settings: DeliveryConfiguration) -> String? {
        if counts.user >= settings.limitPerUser { return "\(counts.user) codes sent to the user in the last hour (limit \(settings.limitPerUser))" }
        if counts.destination >= settings.limitPerDestination {
            return "\(counts.destination) codes sent to this address in the last hour (limit \(settings.limitPerDestination))"
        }
        if counts.host >= settings.limitPerHost { return "\(counts.host) codes sent from this host in the last hour (limit \(settings.limitPerHost))" }
        return nil
    }

    static func message(code: String, request: Request, validitySeconds: Int) -> String {
        let minutes = max(validitySeconds / 60, 1)
        switch request.purpose {
        case .login:
            return """
                Your login code is \(code)

                It is valid for \(minutes) minute\(minutes == 1 ? "" : "s"), once, for \(request.service) on \(request.host) (user \(request.user)).
                If you did not just try to log in, someone else knows your password: change it and tell your administrator.

                """
        case .contact:
            return """
                Your confirmation code is \(code)

                It confirms this \(request.channel == .email ? "address" : "number") for two-factor login: type it with twofoldctl contact verify
                within \(minutes) minute\(minutes == 1 ? "" : "s"). If you did not ask for it (user \(request.user) on \(request.host)), ignore this message.

                """
        }
    }

    /// A detail from the service, safe for the log and the audit: no control characters, never the
    /// code, the destination only masked (a gateway's error may quote it), bounded.
    static func sanitized(_ detail: String, code: String, destination: String, masked: String) -> String {
        var text = String(detail.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        if !code.isEmpty { text = text.replacingOccurrences(of: code, with: "[code]") }
        text = text.replacingOccurrences(of: destination, with: masked, options: .caseInsensitive)
        if destination.hasPrefix("+") { text = text.replacingOccurrences(of: String(destination.dropFirst()), with: masked) }
        return String(text.prefix(200))
    }

    private func audit(_ request: Request, outcome: String, reason: String) async {
        var record = request.audit
        record.timeMillis = clock.nowMillis()
        record.action = "send"
        record.outcome = outcome
        record.reason = reason
        _ = await authenticator.commit([.audit(record)])
    }
}
