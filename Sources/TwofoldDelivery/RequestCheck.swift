import Foundation
import TwofoldCore
import TwofoldProtocol

/// A request frame's JSON, decoded and checked before anything runs: the protocol version, the
/// channel, and fields of the shape and size a command can be given safely. A request that fails
/// is answered `refused` with `detail` (which names fields, never repeats their content).
public enum RequestCheck {
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let detail: String
        init(_ detail: String) { self.detail = detail }
        public var description: String { detail }
    }

    public static let maxUserBytes = 256
    public static let maxDestinationBytes = 256
    public static let maxSubjectBytes = 200
    public static let maxMessageBytes = 8_192
    public static let maxCodeBytes = 64

    /// Only the version, read first: a request of another version may have other fields.
    private struct VersionProbe: Decodable { var version: Int? }

    /// The request in `json`, checked; or why it is refused.
    public static func request(from json: [UInt8]) -> Result<DeliveryRequest, Refusal> {
        let data = Data(json)
        let probe: VersionProbe
        do {
            probe = try JSONDecoder().decode(VersionProbe.self, from: data)
        } catch {
            return .failure(Refusal("the request is not a JSON object"))
        }
        guard let version = probe.version else { return .failure(Refusal("the request has no version")) }
        guard version == DeliveryWire.version else {
            return .failure(Refusal("protocol version \(version) is not supported (this service speaks \(DeliveryWire.version))"))
        }
        let request: DeliveryRequest
        do {
            request = try JSONDecoder().decode(DeliveryRequest.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            return .failure(Refusal("the request has no '\(key.stringValue)'"))
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return .failure(Refusal("the request's '\(field)' is not a string"))
        } catch {
            return .failure(Refusal("the request is not a delivery request"))
        }
        if let refusal = check(request) { return .failure(refusal) }
        return .success(request)
    }

    /// Why `request` is refused, or nil.
    public static func check(_ request: DeliveryRequest) -> Refusal? {
        guard let channel = DeliveryChannel(rawValue: request.channel) else {
            return Refusal("unknown channel (this service sends email and sms)")
        }
        if let problem = plainText(request.user, field: "user", max: maxUserBytes) { return problem }
        if let problem = plainText(request.destination, field: "destination", max: maxDestinationBytes) { return problem }
        // The address as the daemon stores it (ContactAddress): a command puts it in a header or a
        // URL, so nothing else gets through, however the command quotes it.
        guard (try? ContactAddress.normalize(request.destination, channel: channel)) == request.destination else {
            return Refusal(channel == .email ? "destination is not a plain email address" : "destination is not a phone number in E.164 form")
        }
        if let problem = plainText(request.subject, field: "subject", max: maxSubjectBytes, allowEmpty: true) { return problem }
        guard !request.message.isEmpty else { return Refusal("message is empty") }
        guard request.message.utf8.count <= maxMessageBytes else { return Refusal("message is longer than \(maxMessageBytes) bytes") }
        guard !request.message.utf8.contains(0) else { return Refusal("message contains a NUL byte") }
        if let problem = plainText(request.code, field: "code", max: maxCodeBytes) { return problem }
        return nil
    }

    /// `value` has 1 (or 0) to `max` bytes and no control or format character (no line breaks).
    static func plainText(_ value: String, field: String, max: Int, allowEmpty: Bool = false) -> Refusal? {
        if value.isEmpty { return allowEmpty ? nil : Refusal("\(field) is empty") }
        guard value.utf8.count <= max else { return Refusal("\(field) is longer than \(max) bytes") }
        guard !value.unicodeScalars.contains(where: { $0 != "\\" && DisplayText.needsEscape($0) }) else {
            return Refusal("\(field) contains a control character")
        }
        return nil
    }
}
