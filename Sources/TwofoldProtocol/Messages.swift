/// The wire protocol version this code speaks (`docs/protocol.md`).
public enum ProtocolVersion {
    public static let current: UInt8 = 1
}

/// Size limits of `docs/protocol.md`. A frame's length is the u32 that prefixes it: the bytes after it.
public enum ProtocolLimits {
    /// Frames sent to the daemon, and every login-dialog frame.
    public static let maxRequestFrame = 65_536
    /// `RESPONSE` frames to the CLI.
    public static let maxResponseFrame = 4 << 20
    /// Bound of the JSON field in a `REQUEST` (and in any message other than `RESPONSE`).
    public static let maxRequestJSON = 65_000
    /// Bound of the JSON field in a `RESPONSE` (the u16 length is then the escape 0xFFFF).
    public static let maxResponseJSON = (4 << 20) - 16
    /// The u16 field length that, for the JSON field of a `RESPONSE`, means "the value runs to the end of the frame".
    public static let jsonLengthEscape = 0xFFFF
}

/// The message type byte.
public enum MessageType: UInt8, Sendable, CaseIterable {
    case authStart = 0x01
    case answer = 0x02
    case promptEchoOff = 0x11
    case promptEchoOn = 0x12
    case info = 0x13
    case errorMessage = 0x14
    case verdict = 0x20
    case request = 0x30
    case response = 0x31
    case protocolError = 0x7F

    /// The name used in `docs/protocol.md`, e.g. `AUTH_START`.
    public var name: String {
        switch self {
        case .authStart: return "AUTH_START"
        case .answer: return "ANSWER"
        case .promptEchoOff: return "PROMPT_ECHO_OFF"
        case .promptEchoOn: return "PROMPT_ECHO_ON"
        case .info: return "INFO"
        case .errorMessage: return "ERROR_MSG"
        case .verdict: return "VERDICT"
        case .request: return "REQUEST"
        case .response: return "RESPONSE"
        case .protocolError: return "PROTOCOL_ERROR"
        }
    }

    /// Whether this type may carry the known tag `tag`; any other known tag in it is a protocol
    /// error (an unknown tag is skipped, room for later versions). A switch, not a set: it runs for
    /// every field of every frame.
    @inline(__always)
    public func allows(_ tag: FieldTag) -> Bool {
        switch self {
        case .authStart:
            switch tag {
            case .user, .service, .rhost, .tty, .ruser, .password, .deadline: return true
            case .text, .result, .json: return false
            }
        case .answer, .promptEchoOff, .promptEchoOn, .info, .errorMessage, .protocolError: return tag == .text
        case .verdict: return tag == .result || tag == .text
        case .request, .response: return tag == .json
        }
    }

    /// The largest frame (length after the prefix) allowed for this type.
    public var maxFrame: Int {
        self == .response ? ProtocolLimits.maxResponseFrame : ProtocolLimits.maxRequestFrame
    }
}

/// A field tag. Tags not listed here are skipped by the decoder.
public enum FieldTag: UInt8, Sendable, CaseIterable {
    case user = 0x01
    case service = 0x02
    case rhost = 0x03
    case tty = 0x04
    case ruser = 0x05
    case password = 0x06
    /// Binary u32 (big-endian): how long the client waits for each daemon message, in milliseconds.
    case deadline = 0x07
    case text = 0x10
    case result = 0x20
    case json = 0x30

    /// The largest value, in bytes. For `json` this is the bound in a `REQUEST` (and any message but
    /// `RESPONSE`); a `RESPONSE` allows `ProtocolLimits.maxResponseJSON`.
    public var bound: Int {
        switch self {
        case .user, .rhost, .ruser: return 256
        case .service, .tty: return 64
        case .password: return 512
        case .deadline: return 4
        case .text: return 8_192
        case .result: return 1
        case .json: return ProtocolLimits.maxRequestJSON
        }
    }

    /// Whether the value is text (UTF-8 without NUL). `RESULT` and `DEADLINE` are binary.
    public var isText: Bool { self != .result && self != .deadline }

    /// The name used in `docs/protocol.md`, e.g. `USER`.
    public var name: String {
        switch self {
        case .user: return "USER"
        case .service: return "SERVICE"
        case .rhost: return "RHOST"
        case .tty: return "TTY"
        case .ruser: return "RUSER"
        case .password: return "PASSWORD"
        case .deadline: return "DEADLINE"
        case .text: return "TEXT"
        case .result: return "RESULT"
        case .json: return "JSON"
        }
    }

    /// `"USER (0x01)"` for a known tag, `"0x42"` otherwise.
    static func describe(_ raw: UInt8) -> String {
        let hex = hexByte(raw)
        if let tag = FieldTag(rawValue: raw) { return "\(tag.name) (\(hex))" }
        return hex
    }
}

/// `0x0A`-style rendering of a byte.
func hexByte(_ raw: UInt8) -> String {
    "0x" + (raw < 0x10 ? "0" : "") + String(raw, radix: 16, uppercase: true)
}

/// The verdict that ends a login dialog (`RESULT`).
public enum VerdictCode: UInt8, Sendable, Codable, CaseIterable {
    case success = 0
    case failure = 1
    case locked = 2
    case ignore = 3
    case unavailable = 4
    case badRequest = 5
    case denied = 6

    /// The name used in `docs/protocol.md`, e.g. `BAD_REQUEST`.
    public var name: String {
        switch self {
        case .success: return "SUCCESS"
        case .failure: return "FAILURE"
        case .locked: return "LOCKED"
        case .ignore: return "IGNORE"
        case .unavailable: return "UNAVAILABLE"
        case .badRequest: return "BAD_REQUEST"
        case .denied: return "DENIED"
        }
    }
}

/// The fields of `AUTH_START`. Its descriptions and mirror never show the password.
public struct AuthStart: Sendable, Equatable {
    public var user: String
    public var service: String
    public var rhost: String?
    public var tty: String?
    public var ruser: String?
    /// `PAM_AUTHTOK`, only with the module's `forward_password` option. Never described or logged.
    public var password: String?
    /// How long the client waits for each message of the daemon (the module's `timeout=`), in ms.
    public var deadlineMillis: UInt32?

    public init(user: String, service: String, rhost: String? = nil, tty: String? = nil,
                ruser: String? = nil, password: String? = nil, deadlineMillis: UInt32? = nil) {
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.ruser = ruser
        self.password = password
        self.deadlineMillis = deadlineMillis
    }
}

extension AuthStart: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        var parts = ["user: \(String(reflecting: user))", "service: \(String(reflecting: service))"]
        if let rhost { parts.append("rhost: \(String(reflecting: rhost))") }
        if let tty { parts.append("tty: \(String(reflecting: tty))") }
        if let ruser { parts.append("ruser: \(String(reflecting: ruser))") }
        if password != nil { parts.append("password: <redacted>") }
        if let deadlineMillis { parts.append("deadline: \(deadlineMillis) ms") }
        return "AuthStart(" + parts.joined(separator: ", ") + ")"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "user": user, "service": service, "rhost": rhost as Any, "tty": tty as Any, "ruser": ruser as Any,
            "password": (password == nil ? "nil" : "<redacted>") as Any, "deadlineMillis": deadlineMillis as Any,
        ], displayStyle: .struct)
    }
}

/// One protocol message. Descriptions never show an answer (it is a code) or a password.
public enum Message: Sendable, Equatable {
    case authStart(AuthStart)
    /// The user's answer to a prompt (a code): never described or logged.
    case answer(String)
    case promptEchoOff(String)
    case promptEchoOn(String)
    case info(String)
    case errorMessage(String)
    /// `reason` is for the log only.
    case verdict(VerdictCode, reason: String?)
    /// JSON bytes of a control request.
    case request([UInt8])
    /// JSON bytes of a control response.
    case response([UInt8])
    /// The reason the peer closes the connection.
    case protocolError(String)

    public var type: MessageType {
        switch self {
        case .authStart: return .authStart
        case .answer: return .answer
        case .promptEchoOff: return .promptEchoOff
        case .promptEchoOn: return .promptEchoOn
        case .info: return .info
        case .errorMessage: return .errorMessage
        case .verdict: return .verdict
        case .request: return .request
        case .response: return .response
        case .protocolError: return .protocolError
        }
    }
}

extension Message: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        switch self {
        case .authStart(let start): return "AUTH_START \(start)"
        case .answer: return "ANSWER <redacted>"
        case .promptEchoOff(let text), .promptEchoOn(let text), .info(let text), .errorMessage(let text),
             .protocolError(let text):
            return "\(type.name) \(String(reflecting: text))"
        case .verdict(let code, let reason):
            return "VERDICT \(code.name)" + (reason.map { " \(String(reflecting: $0))" } ?? "")
        case .request(let json), .response(let json):
            return "\(type.name) \(json.count) bytes of JSON"
        }
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["message": description], displayStyle: .enum)
    }
}
