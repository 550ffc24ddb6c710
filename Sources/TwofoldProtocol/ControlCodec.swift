import Foundation

/// JSON helpers for control requests and responses (`REQUEST` / `RESPONSE`). Generic over the
/// document types; keys are sorted so the same value always gives the same bytes.
public enum ControlCodec {
    /// A `REQUEST` carrying `value` as JSON. Throws `ProtocolError.fieldTooLong` past 65,000 bytes,
    /// `ControlCodecError.encodingFailed` if the value cannot be encoded.
    public static func encodeRequest<T: Encodable>(_ value: T) throws -> Message {
        .request(try encodeJSON(value, bound: ProtocolLimits.maxRequestJSON))
    }

    /// A `RESPONSE` carrying `value` as JSON. Throws `ProtocolError.fieldTooLong` past 4 MiB − 16 bytes.
    public static func encodeResponse<T: Encodable>(_ value: T) throws -> Message {
        .response(try encodeJSON(value, bound: ProtocolLimits.maxResponseJSON))
    }

    /// Decodes the JSON of a `REQUEST` or `RESPONSE`. A `PROTOCOL_ERROR` throws
    /// `ControlCodecError.peerProtocolError(reason)`; any other message `ProtocolError.unexpectedMessage`;
    /// JSON that does not fit `T` throws `ControlCodecError.invalidJSON` (which never quotes a value).
    public static func decode<T: Decodable>(_ type: T.Type, from message: Message) throws -> T {
        switch message {
        case .request(let json), .response(let json):
            return try decodeJSON(type, from: json)
        case .protocolError(let reason):
            throw ControlCodecError.peerProtocolError(reason)
        default:
            throw ProtocolError.unexpectedMessage("expected REQUEST or RESPONSE, got \(message.type.name)")
        }
    }

    /// Decodes JSON bytes as `T`; errors are `ControlCodecError.invalidJSON`.
    public static func decodeJSON<T: Decodable>(_ type: T.Type, from json: [UInt8]) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(json))
        } catch let error as DecodingError {
            throw ControlCodecError.invalidJSON(Self.describe(error))
        } catch {
            throw ControlCodecError.invalidJSON("not a valid JSON document")
        }
    }

    private static func encodeJSON<T: Encodable>(_ value: T, bound: Int) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw ControlCodecError.encodingFailed(String(describing: T.self))
        }
        guard data.count <= bound else {
            throw ProtocolError.fieldTooLong(tag: FieldTag.json.rawValue, length: data.count)
        }
        return [UInt8](data)
    }

    /// The kind of failure and where, without the offending value (it could be a secret or a code).
    private static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            guard !keys.isEmpty else { return "the top level" }
            return keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "expected \(type) at \(path(context.codingPath))"
        case .valueNotFound(let type, let context):
            return "missing \(type) value at \(path(context.codingPath))"
        case .keyNotFound(let key, let context):
            return "missing key \"\(key.stringValue)\" at \(path(context.codingPath))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "not a valid JSON document" : "invalid value at \(path(context.codingPath))"
        @unknown default:
            return "undecodable JSON"
        }
    }
}

/// Failures of `ControlCodec`. Descriptions never include a JSON value.
public enum ControlCodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer answered `PROTOCOL_ERROR` with this reason.
    case peerProtocolError(String)
    /// The JSON does not decode as the expected type (where and how, never the value).
    case invalidJSON(String)
    /// The value could not be encoded as JSON (the type's name).
    case encodingFailed(String)

    public var description: String {
        switch self {
        case .peerProtocolError(let reason): return "the peer reported a protocol error: \(reason)"
        case .invalidJSON(let what): return "invalid JSON document: \(what)"
        case .encodingFailed(let type): return "cannot encode \(type) as JSON"
        }
    }
}
