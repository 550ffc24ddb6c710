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
    /// Relay → server, first on a tier connection: who asks, as the relay's host saw it (`RelayContext`).
    case relay = 0x40
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
        case .relay: return "RELAY"
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
            case .user, .service, .rhost, .tty, .ruser, .password, .deadline, .capabilities: return true
            case .text, .payload, .result, .json: return false
            }
        // PAYLOAD only where a binary challenge or response belongs; that the client declared
        // `binaryPayload` is checked by the dialog (`ClientCapabilities.check`), not here.
        case .answer, .promptEchoOff, .promptEchoOn: return tag == .text || tag == .payload
        case .info, .errorMessage, .protocolError: return tag == .text
        case .verdict: return tag == .result || tag == .text
        case .request, .response, .relay: return tag == .json
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
    /// Binary u32 (big-endian) bitset: what the client can do beyond text prompts (`ClientCapabilities`).
    case capabilities = 0x08
    case text = 0x10
    /// Bytes: a binary challenge (in a prompt) or response (in an answer), beside the TEXT. Only
    /// between the daemon and a client that declared `binaryPayload`. Never described or logged.
    case payload = 0x11
    case result = 0x20
    case json = 0x30

    /// The largest value, in bytes. For `json` this is the bound in a `REQUEST` (and any message but
    /// `RESPONSE`); a `RESPONSE` allows `ProtocolLimits.maxResponseJSON`.
    public var bound: Int {
        switch self {
        case .user, .rhost, .ruser: return 256
        case .service, .tty: return 64
        case .password: return 512
        case .deadline, .capabilities: return 4
        case .text, .payload: return 8_192
        case .result: return 1
        case .json: return ProtocolLimits.maxRequestJSON
        }
    }

    /// Whether the value is text (UTF-8 without NUL). `RESULT`, `DEADLINE`, `CAPABILITIES` and
    /// `PAYLOAD` are binary.
    public var isText: Bool {
        switch self {
        case .result, .deadline, .capabilities, .payload: return false
        case .user, .service, .rhost, .tty, .ruser, .password, .text, .json: return true
        }
    }

    /// The capability a client must declare in AUTH_START before this field may pass between it
    /// and the daemon, in either direction (nil: none needed).
    public var requiredCapability: ClientCapabilities? {
        self == .payload ? .binaryPayload : nil
    }

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
        case .capabilities: return "CAPABILITIES"
        case .text: return "TEXT"
        case .payload: return "PAYLOAD"
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

/// What a login client can do beyond text prompts: AUTH_START's CAPABILITIES, a u32 bitset.
///
/// No field means `[]` (text prompts only, what every module before CAPABILITIES could do), and so
/// does a field with no bit set. A daemon ignores the bits it does not know (`known`), so a newer
/// client gets what this daemon can offer; the daemon offers a factor only if the client can carry
/// it (`LoginContext.capabilities`). Bits are assigned in docs/protocol.md, in order, never reused.
public struct ClientCapabilities: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Bit 0: the client carries binary challenges and responses (PAYLOAD in prompts and answers),
    /// e.g. to talk to a FIDO2 key at the console.
    public static let binaryPayload = ClientCapabilities(rawValue: 1 << 0)
    /// Bit 1: the client can talk to a FIDO2 key (the key step, `KeyRequest`/`KeyResponse`); it
    /// means something only with `binaryPayload`, which carries the step.
    public static let fido2 = ClientCapabilities(rawValue: 1 << 1)

    /// Every bit this version knows; the others are reserved and ignored.
    public static let known: ClientCapabilities = [.binaryPayload, .fido2]

    /// The names of docs/protocol.md, by bit.
    static let names: [(ClientCapabilities, String)] = [(.binaryPayload, "BINARY_PAYLOAD"), (.fido2, "FIDO2")]

    /// Whether the client can take the key step: it talks to keys and carries binary payloads.
    public var canUseKeys: Bool { isSuperset(of: [.binaryPayload, .fido2]) }

    /// The known bits only: what a daemon acts on.
    public var knownOnly: ClientCapabilities { intersection(.known) }

    /// `"none"`, or the names joined with `+`, unknown bits as hex: `"BINARY_PAYLOAD+0x80000000"`.
    public var description: String {
        var parts = Self.names.filter { contains($0.0) }.map(\.1)
        let unknown = rawValue & ~Self.known.rawValue
        if unknown != 0 { parts.append("0x" + String(unknown, radix: 16, uppercase: true)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "+")
    }

    /// Checks a login-dialog message against what the client declared, in either direction: a
    /// field that needs a capability the client did not declare (PAYLOAD without `binaryPayload`)
    /// is a protocol error.
    public func check(_ message: Message) throws {
        if message.payload != nil, !contains(.binaryPayload) {
            throw ProtocolError.undeclaredCapability(tag: FieldTag.payload.rawValue)
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
    /// What the client can do beyond text prompts, as sent (unknown bits included); nil when the
    /// field is absent (a module before CAPABILITIES), which means the same as `[]`.
    public var capabilities: ClientCapabilities?

    public init(user: String, service: String, rhost: String? = nil, tty: String? = nil,
                ruser: String? = nil, password: String? = nil, deadlineMillis: UInt32? = nil,
                capabilities: ClientCapabilities? = nil) {
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.ruser = ruser
        self.password = password
        self.deadlineMillis = deadlineMillis
        self.capabilities = capabilities
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
        if let capabilities { parts.append("capabilities: \(capabilities)") }
        return "AuthStart(" + parts.joined(separator: ", ") + ")"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "user": user, "service": service, "rhost": rhost as Any, "tty": tty as Any, "ruser": ruser as Any,
            "password": (password == nil ? "nil" : "<redacted>") as Any, "deadlineMillis": deadlineMillis as Any,
            "capabilities": capabilities as Any,
        ], displayStyle: .struct)
    }
}

/// One protocol message. Descriptions never show an answer (it is a code), a password or a payload.
public enum Message: Sendable, Equatable {
    case authStart(AuthStart)
    /// The user's answer to a prompt (a code), and a binary response when the prompt carried a
    /// challenge (only from a client that declared `binaryPayload`): never described or logged.
    case answer(String, payload: [UInt8]? = nil)
    /// A prompt, and a binary challenge for a client that declared `binaryPayload`.
    case promptEchoOff(String, payload: [UInt8]? = nil)
    case promptEchoOn(String, payload: [UInt8]? = nil)
    case info(String)
    case errorMessage(String)
    /// `reason` is for the log only.
    case verdict(VerdictCode, reason: String?)
    /// JSON bytes of a control request.
    case request([UInt8])
    /// JSON bytes of a control response.
    case response([UInt8])
    /// JSON bytes of a `RelayContext`: the first message a relay sends a server on a tier connection.
    case relay([UInt8])
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
        case .relay: return .relay
        case .protocolError: return .protocolError
        }
    }

    /// The PAYLOAD of a prompt or an answer, if any.
    public var payload: [UInt8]? {
        switch self {
        case .answer(_, let payload), .promptEchoOff(_, let payload), .promptEchoOn(_, let payload): return payload
        default: return nil
        }
    }
}

extension Message: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        switch self {
        case .authStart(let start): return "AUTH_START \(start)"
        case .answer(_, let payload): return "ANSWER <redacted>" + (payload == nil ? "" : " PAYLOAD <redacted>")
        case .promptEchoOff(let text, let payload), .promptEchoOn(let text, let payload):
            return "\(type.name) \(String(reflecting: text))" + (payload == nil ? "" : " PAYLOAD <redacted>")
        case .info(let text), .errorMessage(let text), .protocolError(let text):
            return "\(type.name) \(String(reflecting: text))"
        case .verdict(let code, let reason):
            return "VERDICT \(code.name)" + (reason.map { " \(String(reflecting: $0))" } ?? "")
        case .request(let json), .response(let json), .relay(let json):
            return "\(type.name) \(json.count) bytes of JSON"
        }
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["message": description], displayStyle: .enum)
    }
}
