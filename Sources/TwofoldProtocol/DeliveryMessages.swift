import Foundation

/// The daemon ↔ delivery service protocol (`docs/delivery.md`): on a Unix socket, one request and
/// one response per connection, each a u32 big-endian length and that many bytes of JSON.
public enum DeliveryWire {
    public static let version = 1
    /// The largest frame either side accepts.
    public static let maxFrame = 16_384

    /// `value` as a frame.
    public static func frame<T: Encodable>(_ value: T) throws -> [UInt8] {
        let json = try JSONEncoder().encode(value)
        guard json.count <= maxFrame else { throw ProtocolError.frameTooLarge(announced: json.count, max: maxFrame) }
        let n = UInt32(json.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + json
    }

    /// The length a frame's 4-byte prefix announces, or nil if it is over `maxFrame`.
    public static func length(prefix: [UInt8]) -> Int? {
        guard prefix.count == 4 else { return nil }
        let n = Int(prefix[0]) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
        return n <= maxFrame ? n : nil
    }
}

/// What the daemon asks the delivery service to send.
public struct DeliveryRequest: Codable, Sendable, Equatable {
    public var version: Int
    /// `email` or `sms`.
    public var channel: String
    public var user: String
    /// The normalised address (`ContactAddress`).
    public var destination: String
    /// A subject line for email (commands for other channels ignore it).
    public var subject: String
    /// The whole text to send, the code in it: the command reads it on standard input.
    public var message: String
    /// The code alone, so the service can blank it out of anything it logs (a command that echoes
    /// its input to stderr). Never passed to the command but inside `message`.
    public var code: String

    public init(channel: String, user: String, destination: String, subject: String, message: String, code: String) {
        self.version = DeliveryWire.version
        self.channel = channel
        self.user = user
        self.destination = destination
        self.subject = subject
        self.message = message
        self.code = code
    }
}

/// The delivery service's answer, once the command has finished (or was given up on).
public struct DeliveryResponse: Codable, Sendable, Equatable {
    /// `sent` (the command exited 0), or why not: `failed` (it exited otherwise or could not run),
    /// `timeout` (killed at the time limit), `unconfigured` (no command for the channel),
    /// `refused` (a bad request).
    public var outcome: String
    /// For the admin's log; never holds the code or the message. Nil when sent.
    public var detail: String?

    public init(outcome: String, detail: String? = nil) {
        self.outcome = outcome
        self.detail = detail
    }

    public var sent: Bool { outcome == "sent" }
}
