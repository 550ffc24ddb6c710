/// Encodes and decodes whole frames of `docs/protocol.md`. Pure and allocation-conscious: encoding
/// appends straight into the caller's buffer, decoding reads the body in place and allocates only the
/// message's own strings and byte arrays.
public enum FrameCodec {
    /// Size of the u32 length prefix.
    public static let lengthPrefixSize = 4

    // MARK: Encoding

    /// Appends one whole frame (length prefix included) to `buffer`. Throws `fieldTooLong` if a field
    /// exceeds its bound and `invalidText` if a text holds a NUL byte (or JSON is not UTF-8); on a throw
    /// `buffer` is left as it was.
    public static func encode(_ message: Message, into buffer: inout [UInt8]) throws {
        let start = buffer.count
        do {
            try appendFrame(message, into: &buffer, start: start)
        } catch {
            buffer.removeSubrange(start..<buffer.count)
            throw error
        }
    }

    /// One whole frame (length prefix included).
    public static func encode(_ message: Message) throws -> [UInt8] {
        var buffer: [UInt8] = []
        try encode(message, into: &buffer)
        return buffer
    }

    private static func appendFrame(_ message: Message, into buffer: inout [UInt8], start: Int) throws {
        let type = message.type
        buffer.reserveCapacity(start + 6 + sizeHint(message))
        buffer.append(0)
        buffer.append(0)
        buffer.append(0)
        buffer.append(0)
        buffer.append(ProtocolVersion.current)
        buffer.append(type.rawValue)

        switch message {
        case .authStart(let start):
            try appendText(.user, start.user, into: &buffer)
            try appendText(.service, start.service, into: &buffer)
            if let rhost = start.rhost { try appendText(.rhost, rhost, into: &buffer) }
            if let tty = start.tty { try appendText(.tty, tty, into: &buffer) }
            if let ruser = start.ruser { try appendText(.ruser, ruser, into: &buffer) }
            if let password = start.password { try appendText(.password, password, into: &buffer) }
            if let deadline = start.deadlineMillis { appendU32(.deadline, deadline, into: &buffer) }
            if let capabilities = start.capabilities { appendU32(.capabilities, capabilities.rawValue, into: &buffer) }
        case .answer(let text, let payload), .promptEchoOff(let text, let payload), .promptEchoOn(let text, let payload):
            try appendText(.text, text, into: &buffer)
            if let payload { try appendBytes(.payload, payload, into: &buffer) }
        case .info(let text), .errorMessage(let text), .protocolError(let text):
            try appendText(.text, text, into: &buffer)
        case .verdict(let code, let reason):
            appendHeader(.result, length: 1, into: &buffer)
            buffer.append(code.rawValue)
            if let reason { try appendText(.text, reason, into: &buffer) }
        case .request(let json), .relay(let json):
            try appendJSON(json, bound: ProtocolLimits.maxRequestJSON, escapeAllowed: false, into: &buffer)
        case .response(let json):
            try appendJSON(json, bound: ProtocolLimits.maxResponseJSON, escapeAllowed: true, into: &buffer)
        }

        let length = buffer.count - start - lengthPrefixSize
        guard length <= type.maxFrame else {
            throw ProtocolError.frameTooLarge(announced: length, max: type.maxFrame)
        }
        buffer[start] = UInt8(truncatingIfNeeded: length >> 24)
        buffer[start + 1] = UInt8(truncatingIfNeeded: length >> 16)
        buffer[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        buffer[start + 3] = UInt8(truncatingIfNeeded: length)
    }

    /// Bytes after version and type, close enough to reserve once.
    private static func sizeHint(_ message: Message) -> Int {
        switch message {
        case .authStart(let s):
            return 32 + s.user.utf8.count + s.service.utf8.count + (s.rhost?.utf8.count ?? 0)
                + (s.tty?.utf8.count ?? 0) + (s.ruser?.utf8.count ?? 0) + (s.password?.utf8.count ?? 0)
        case .answer(let text, let payload), .promptEchoOff(let text, let payload), .promptEchoOn(let text, let payload):
            return 3 + text.utf8.count + (payload.map { 3 + $0.count } ?? 0)
        case .info(let text), .errorMessage(let text), .protocolError(let text):
            return 3 + text.utf8.count
        case .verdict(_, let reason):
            return 7 + (reason?.utf8.count ?? 0)
        case .request(let json), .response(let json), .relay(let json):
            return 3 + json.count
        }
    }

    @inline(__always)
    private static func appendHeader(_ tag: FieldTag, length: Int, into buffer: inout [UInt8]) {
        buffer.append(tag.rawValue)
        buffer.append(UInt8(truncatingIfNeeded: length >> 8))
        buffer.append(UInt8(truncatingIfNeeded: length))
    }

    private static func appendText(_ tag: FieldTag, _ text: String, into buffer: inout [UInt8]) throws {
        var text = text
        try text.withUTF8 { utf8 in
            guard utf8.count <= tag.bound else {
                throw ProtocolError.fieldTooLong(tag: tag.rawValue, length: utf8.count)
            }
            // Swift strings are valid UTF-8; only a NUL byte can make them invalid text.
            guard !utf8.contains(0) else { throw ProtocolError.invalidText(tag.rawValue) }
            appendHeader(tag, length: utf8.count, into: &buffer)
            buffer.append(contentsOf: utf8)
        }
    }

    /// A binary u32, big-endian (DEADLINE, CAPABILITIES).
    private static func appendU32(_ tag: FieldTag, _ value: UInt32, into buffer: inout [UInt8]) {
        appendHeader(tag, length: 4, into: &buffer)
        for shift in [24, 16, 8, 0] { buffer.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    /// Bytes, not text (PAYLOAD): only the bound is checked.
    private static func appendBytes(_ tag: FieldTag, _ bytes: [UInt8], into buffer: inout [UInt8]) throws {
        guard bytes.count <= tag.bound else { throw ProtocolError.fieldTooLong(tag: tag.rawValue, length: bytes.count) }
        appendHeader(tag, length: bytes.count, into: &buffer)
        buffer.append(contentsOf: bytes)
    }

    private static func appendJSON(_ json: [UInt8], bound: Int, escapeAllowed: Bool, into buffer: inout [UInt8]) throws {
        guard json.count <= bound else {
            throw ProtocolError.fieldTooLong(tag: FieldTag.json.rawValue, length: json.count)
        }
        let valid = json.withUnsafeBytes { TextValidation.isValidText($0, from: 0, to: $0.count) }
        guard valid else { throw ProtocolError.invalidText(FieldTag.json.rawValue) }
        // 0xFFFF is the escape, so a value of exactly 65,535 bytes uses it too. The escaped value runs
        // to the end of the frame: JSON is the last (only) field of a RESPONSE.
        let length = escapeAllowed && json.count >= ProtocolLimits.jsonLengthEscape
            ? ProtocolLimits.jsonLengthEscape : json.count
        appendHeader(.json, length: length, into: &buffer)
        buffer.append(contentsOf: json)
    }

    // MARK: Decoding

    /// Reads the u32 length prefix at the start of `prefix` (at least 4 bytes) and checks it:
    /// `frameTooShort` below 2, `frameTooLarge` above `maxFrame`. Call this before buffering the body.
    public static func frameLength(prefix: UnsafeRawBufferPointer, maxFrame: Int) throws -> Int {
        precondition(prefix.count >= lengthPrefixSize, "need the 4-byte length prefix")
        let length = Int(prefix[0]) << 24 | Int(prefix[1]) << 16 | Int(prefix[2]) << 8 | Int(prefix[3])
        guard length >= 2 else { throw ProtocolError.frameTooShort }
        guard length <= maxFrame else { throw ProtocolError.frameTooLarge(announced: length, max: maxFrame) }
        return length
    }

    /// Decodes one frame body (after the 4-byte length): version, type, fields.
    ///
    /// Besides the field rules it enforces the per-type frame limit: a body over 65,536 bytes is only
    /// accepted for `RESPONSE` (up to 4 MiB).
    public static func decodeBody(_ body: UnsafeRawBufferPointer) throws -> Message {
        let count = body.count
        guard count >= 2 else { throw ProtocolError.frameTooShort }
        guard count <= ProtocolLimits.maxResponseFrame else {
            throw ProtocolError.frameTooLarge(announced: count, max: ProtocolLimits.maxResponseFrame)
        }
        guard body[0] == ProtocolVersion.current else { throw ProtocolError.badVersion(body[0]) }
        guard let type = MessageType(rawValue: body[1]) else { throw ProtocolError.unknownType(body[1]) }
        guard count <= type.maxFrame else { throw ProtocolError.frameTooLarge(announced: count, max: type.maxFrame) }

        var fields = FieldSlots()
        var index = 2
        while index < count {
            guard count - index >= 3 else { throw ProtocolError.fieldOverrun }
            let raw = body[index]
            var length = Int(body[index + 1]) << 8 | Int(body[index + 2])
            index += 3
            guard let tag = FieldTag(rawValue: raw) else {
                // Unknown tag: skip it (room for later versions).
                guard length <= count - index else { throw ProtocolError.fieldOverrun }
                index += length
                continue
            }
            var bound = tag.bound
            if tag == .json && type == .response {
                bound = ProtocolLimits.maxResponseJSON
                if length == ProtocolLimits.jsonLengthEscape { length = count - index }
            }
            guard type.allows(tag) else { throw ProtocolError.fieldNotAllowed(tag: raw, type: type.rawValue) }
            guard fields[tag] == nil else { throw ProtocolError.duplicateField(raw) }
            guard length <= bound else { throw ProtocolError.fieldTooLong(tag: raw, length: length) }
            guard length <= count - index else { throw ProtocolError.fieldOverrun }
            if tag.isText && !TextValidation.isValidText(body, from: index, to: index + length) {
                throw ProtocolError.invalidText(raw)
            }
            fields[tag] = index ..< index + length
            index += length
        }

        func text(_ tag: FieldTag) throws -> String {
            guard let range = fields[tag] else { throw ProtocolError.missingField(tag.rawValue) }
            return string(body, range)
        }
        func optionalText(_ tag: FieldTag) -> String? {
            fields[tag].map { string(body, $0) }
        }
        func json() throws -> [UInt8] {
            guard let range = fields[.json] else { throw ProtocolError.missingField(FieldTag.json.rawValue) }
            return [UInt8](UnsafeRawBufferPointer(rebasing: body[range]))
        }
        func payload() -> [UInt8]? {
            fields[.payload].map { [UInt8](UnsafeRawBufferPointer(rebasing: body[$0])) }
        }
        /// A binary u32 that must be exactly 4 bytes (DEADLINE, CAPABILITIES).
        func u32(_ tag: FieldTag) throws -> UInt32? {
            guard let range = fields[tag] else { return nil }
            guard range.count == 4 else { throw ProtocolError.invalidField(tag.rawValue) }
            return range.reduce(UInt32(0)) { $0 << 8 | UInt32(body[$1]) }
        }

        switch type {
        case .authStart:
            let deadline = try u32(.deadline)
            let capabilities = try u32(.capabilities).map(ClientCapabilities.init(rawValue:))
            return .authStart(AuthStart(
                user: try text(.user), service: try text(.service), rhost: optionalText(.rhost),
                tty: optionalText(.tty), ruser: optionalText(.ruser), password: optionalText(.password),
                deadlineMillis: deadline, capabilities: capabilities))
        case .answer: return .answer(try text(.text), payload: payload())
        case .promptEchoOff: return .promptEchoOff(try text(.text), payload: payload())
        case .promptEchoOn: return .promptEchoOn(try text(.text), payload: payload())
        case .info: return .info(try text(.text))
        case .errorMessage: return .errorMessage(try text(.text))
        case .protocolError: return .protocolError(try text(.text))
        case .verdict:
            guard let range = fields[.result] else { throw ProtocolError.missingField(FieldTag.result.rawValue) }
            guard range.count == 1 else { throw ProtocolError.invalidField(FieldTag.result.rawValue) }
            let raw = body[range.lowerBound]
            guard let code = VerdictCode(rawValue: raw) else { throw ProtocolError.unknownVerdictCode(raw) }
            return .verdict(code, reason: optionalText(.text))
        case .request: return .request(try json())
        case .relay: return .relay(try json())
        case .response: return .response(try json())
        }
    }

    @inline(__always)
    private static func string(_ body: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        // Already validated: decoding cannot repair anything.
        String(decoding: UnsafeRawBufferPointer(rebasing: body[range]), as: UTF8.self)
    }
}

/// Where each known field sits in the body; no heap allocation.
private struct FieldSlots {
    private var user, service, rhost, tty, ruser, password, deadline, capabilities, text, payload, result, json: Range<Int>?

    subscript(tag: FieldTag) -> Range<Int>? {
        get {
            switch tag {
            case .user: return user
            case .service: return service
            case .rhost: return rhost
            case .tty: return tty
            case .ruser: return ruser
            case .password: return password
            case .deadline: return deadline
            case .capabilities: return capabilities
            case .text: return text
            case .payload: return payload
            case .result: return result
            case .json: return json
            }
        }
        set {
            switch tag {
            case .user: user = newValue
            case .service: service = newValue
            case .rhost: rhost = newValue
            case .tty: tty = newValue
            case .ruser: ruser = newValue
            case .password: password = newValue
            case .deadline: deadline = newValue
            case .capabilities: capabilities = newValue
            case .text: text = newValue
            case .payload: payload = newValue
            case .result: result = newValue
            case .json: json = newValue
            }
        }
    }
}
