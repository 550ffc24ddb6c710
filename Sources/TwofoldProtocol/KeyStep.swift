/// The key step's payloads (docs/protocol.md, "The key step"): the daemon's challenge in a
/// PROMPT_ECHO_OFF's PAYLOAD, the module's answer in the ANSWER's PAYLOAD. Big-endian, strict:
/// a length past the end, trailing bytes or a value out of range is refused.

/// Daemon → module: get an assertion over `challenge` from a key holding one of `credentials`.
public struct KeyRequest: Sendable, Equatable {
    public static let magic: UInt8 = 0x4B
    public static let version: UInt8 = 1
    public static let maxCredentials = 16
    public static let timeoutRange: ClosedRange<UInt32> = 1_000...120_000

    public var requireUserVerification: Bool
    public var timeoutMillis: UInt32
    public var rpID: String
    public var challenge: [UInt8]
    public var credentials: [[UInt8]]
    /// The text to ask a PIN with, when the key needs one for user verification.
    public var pinPrompt: String

    public init(requireUserVerification: Bool, timeoutMillis: UInt32, rpID: String, challenge: [UInt8], credentials: [[UInt8]],
                pinPrompt: String) {
        self.requireUserVerification = requireUserVerification
        self.timeoutMillis = timeoutMillis
        self.rpID = rpID
        self.challenge = challenge
        self.credentials = credentials
        self.pinPrompt = pinPrompt
    }

    /// The payload; nil if a field is out of range or the whole would pass PAYLOAD's bound
    /// (the caller lists fewer credentials).
    public func encoded() -> [UInt8]? {
        let rp = Array(rpID.utf8), pin = Array(pinPrompt.utf8)
        guard (1...255).contains(rp.count), pin.count <= 255, challenge.count == 32, Self.timeoutRange.contains(timeoutMillis),
              (1...Self.maxCredentials).contains(credentials.count),
              credentials.allSatisfy({ (1...1_023).contains($0.count) }) else { return nil }
        var out: [UInt8] = [Self.magic, Self.version, (requireUserVerification ? 1 : 0) | 2]
        out.appendBigEndian(timeoutMillis)
        out.append(UInt8(rp.count))
        out += rp + challenge
        out.append(UInt8(credentials.count))
        for id in credentials {
            out.appendBigEndian(UInt16(id.count))
            out += id
        }
        out.append(UInt8(pin.count))
        out += pin
        return out.count <= FieldTag.payload.bound ? out : nil
    }

    /// Parses a payload strictly (what the module does in C; here for tests and tools).
    public static func decode(_ bytes: [UInt8]) throws -> KeyRequest {
        var reader = ByteReader(bytes)
        let invalid = KeyResponse.Invalid.self
        guard reader.byte() == magic, reader.byte() == version, let flags = reader.byte(), flags & ~3 == 0, flags & 2 != 0,
              let timeout = reader.u32(), timeoutRange.contains(timeout), let rp = reader.bytes(count8: 1...255),
              let rpID = String(validating: rp, as: UTF8.self), let challenge = reader.fixed(32),
              let count = reader.byte(), (1...maxCredentials).contains(Int(count)) else {
            throw invalid.init(description: "not a valid key request")
        }
        var credentials: [[UInt8]] = []
        for _ in 0..<count {
            guard let id = reader.field(1...1_023) else { throw invalid.init(description: "key request credential out of range") }
            credentials.append(id)
        }
        guard let pin = reader.bytes(count8: 0...255), let pinPrompt = String(validating: pin, as: UTF8.self), reader.atEnd else {
            throw invalid.init(description: "key request PIN prompt invalid or trailing bytes")
        }
        return KeyRequest(requireUserVerification: flags & 1 != 0, timeoutMillis: timeout, rpID: rpID, challenge: challenge,
                          credentials: credentials, pinPrompt: pinPrompt)
    }
}

/// Module → daemon: what the key did.
public struct KeyResponse: Sendable, Equatable {
    public static let magic: UInt8 = 0x6B
    public static let version: UInt8 = 1

    /// `enum tf_fido_status` of pam/fido/include/twofold_fido.h.
    public enum Status: UInt8, Sendable, Equatable {
        case ok = 0, noLibrary, noDevice, noCredential, timeout, pinRequired, pinInvalid, pinBlocked, uvUnsupported, excluded, error, notBuilt

        /// For the audit and the daemon's log.
        public var description: String {
            switch self {
            case .ok: "assertion"
            case .noLibrary: "libfido2 is not installed on the host"
            case .noDevice: "no security key plugged in"
            case .noCredential: "no plugged-in key is registered"
            case .timeout: "the key was not touched in time"
            case .pinRequired: "no PIN given"
            case .pinInvalid: "wrong PIN"
            case .pinBlocked: "the key's PIN is blocked"
            case .uvUnsupported: "the key cannot verify the user"
            case .excluded: "key already registered"
            case .error: "key error"
            case .notBuilt: "the module was built without FIDO2 support"
            }
        }
    }

    public var status: Status
    /// libfido2's FIDO_ERR_* code, 0 if none.
    public var fidoError: Int32
    /// With `.ok`.
    public var assertion: KeyAssertionFields?

    public struct KeyAssertionFields: Sendable, Equatable {
        public var credentialID: [UInt8]
        public var authenticatorData: [UInt8]
        public var signature: [UInt8]

        public init(credentialID: [UInt8], authenticatorData: [UInt8], signature: [UInt8]) {
            self.credentialID = credentialID
            self.authenticatorData = authenticatorData
            self.signature = signature
        }
    }

    public init(status: Status, fidoError: Int32 = 0, assertion: KeyAssertionFields? = nil) {
        self.status = status
        self.fidoError = fidoError
        self.assertion = assertion
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.magic, Self.version, status.rawValue]
        out.appendBigEndian(UInt32(bitPattern: fidoError))
        if let assertion {
            for field in [assertion.credentialID, assertion.authenticatorData, assertion.signature] {
                out.appendBigEndian(UInt16(field.count))
                out += field
            }
        }
        return out
    }

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Parses a payload strictly.
    public static func decode(_ bytes: [UInt8]) throws -> KeyResponse {
        var reader = ByteReader(bytes)
        guard reader.byte() == magic, reader.byte() == version else { throw Invalid(description: "not a key response (magic or version)") }
        guard let raw = reader.byte(), let status = Status(rawValue: raw) else { throw Invalid(description: "unknown key status") }
        guard let error = reader.u32() else { throw Invalid(description: "key response cut short") }
        var response = KeyResponse(status: status, fidoError: Int32(bitPattern: error))
        if status == .ok {
            guard let id = reader.field(1...1_023), let data = reader.field(37...1_024), let signature = reader.field(1...512) else {
                throw Invalid(description: "key assertion fields out of range or cut short")
            }
            response.assertion = KeyAssertionFields(credentialID: id, authenticatorData: data, signature: signature)
        }
        guard reader.atEnd else { throw Invalid(description: "key response has trailing bytes") }
        return response
    }
}

/// Reads big-endian fields from a payload, nil past the end.
struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset == bytes.count }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u32() -> UInt32? {
        guard bytes.count - offset >= 4 else { return nil }
        defer { offset += 4 }
        return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A u8 length and that many bytes, the length within `range`.
    mutating func bytes(count8 range: ClosedRange<Int>) -> [UInt8]? {
        guard offset < bytes.count, range.contains(Int(bytes[offset])), bytes.count - offset - 1 >= Int(bytes[offset]) else { return nil }
        let length = Int(bytes[offset])
        defer { offset += 1 + length }
        return Array(bytes[offset + 1..<offset + 1 + length])
    }

    mutating func fixed(_ count: Int) -> [UInt8]? {
        guard bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A u16 length and that many bytes, the length within `range`.
    mutating func field(_ range: ClosedRange<Int>) -> [UInt8]? {
        guard bytes.count - offset >= 2 else { return nil }
        let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
        guard range.contains(length), bytes.count - offset - 2 >= length else { return nil }
        defer { offset += 2 + length }
        return Array(bytes[offset + 2..<offset + 2 + length])
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
