/// A violation of `docs/protocol.md`. Descriptions name tags, types and sizes, never a field's value.
public enum ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The u32 length announces more than the receiver accepts (checked before anything is buffered),
    /// or a frame to encode would be larger than its type allows.
    case frameTooLarge(announced: Int, max: Int)
    /// The u32 length is below 2 (no room for version and type).
    case frameTooShort
    case badVersion(UInt8)
    case unknownType(UInt8)
    /// A field's header or value runs past the end of the frame.
    case fieldOverrun
    /// A known tag appears twice.
    case duplicateField(UInt8)
    /// A field is longer than its tag's bound.
    case fieldTooLong(tag: UInt8, length: Int)
    /// A known tag in a message type that does not list it (e.g. `RESULT` outside `VERDICT`).
    case fieldNotAllowed(tag: UInt8, type: UInt8)
    /// A field the message type requires is absent.
    case missingField(UInt8)
    /// A text field holds a NUL byte or is not valid UTF-8.
    case invalidText(UInt8)
    /// `RESULT` is not exactly one byte, or `DEADLINE` or `CAPABILITIES` not exactly four.
    case invalidField(UInt8)
    /// A field that needs a capability the client did not declare in AUTH_START (`PAYLOAD`
    /// without `binaryPayload`), sent by either side. Found by the dialog, not the codec.
    case undeclaredCapability(tag: UInt8)
    /// `RESULT` holds a verdict code this version does not know.
    case unknownVerdictCode(UInt8)
    /// A well-formed message the receiver did not expect here (the string names types, never values).
    case unexpectedMessage(String)

    public var description: String {
        switch self {
        case .frameTooLarge(let announced, let max):
            return "frame of \(announced) bytes exceeds the limit of \(max) bytes"
        case .frameTooShort:
            return "frame shorter than its version and type"
        case .badVersion(let version):
            return "unsupported protocol version \(version) (expected \(ProtocolVersion.current))"
        case .unknownType(let type):
            return "unknown message type \(hexByte(type))"
        case .fieldOverrun:
            return "field runs past the end of the frame"
        case .duplicateField(let tag):
            return "field \(FieldTag.describe(tag)) appears twice"
        case .fieldTooLong(let tag, let length):
            let bound = FieldTag(rawValue: tag).map { " (bound \($0.bound))" } ?? ""
            return "field \(FieldTag.describe(tag)) of \(length) bytes is too long\(bound)"
        case .fieldNotAllowed(let tag, let type):
            let name = MessageType(rawValue: type)?.name ?? hexByte(type)
            return "field \(FieldTag.describe(tag)) is not allowed in \(name)"
        case .missingField(let tag):
            return "required field \(FieldTag.describe(tag)) is missing"
        case .invalidText(let tag):
            return "field \(FieldTag.describe(tag)) is not valid UTF-8 text without NUL bytes"
        case .invalidField(let tag):
            return "field \(FieldTag.describe(tag)) has an invalid length"
        case .undeclaredCapability(let tag):
            let capability = FieldTag(rawValue: tag)?.requiredCapability.map { " \($0)" } ?? ""
            return "field \(FieldTag.describe(tag)) needs the capability\(capability), which the client did not declare"
        case .unknownVerdictCode(let code):
            return "unknown verdict code \(code)"
        case .unexpectedMessage(let what):
            return "unexpected message: \(what)"
        }
    }
}
