import TwofoldCrypto

/// Why a delivered code was sent: to log in, or to prove a new contact is the user's.
public enum DeliveryPurpose: String, Codable, Sendable {
    case login
    case contact
}

/// A delivered code as stored: only its hash, bound to what it was sent for. One per user and
/// purpose: a new one replaces (invalidates) the previous one.
public struct DeliveredCodeRecord: Sendable, Equatable {
    /// Random; a use names it, so a code replaced meanwhile cannot be used (`FactorUse.deliveredCode`).
    public var id: Int64
    public var purpose: DeliveryPurpose
    public var channel: DeliveryChannel
    /// The normalised address it went to (`ContactAddress`).
    public var destination: String
    /// HMAC-SHA256(pepper, "twofold-delivered" || id || code) (`DeliveredCode.hash`).
    public var hash: [UInt8]
    public var digits: Int
    /// The host and service the login was on when it was requested (a login code works only there).
    public var host: String
    public var service: String
    public var createdMillis: Int64
    public var expiresMillis: Int64

    public init(id: Int64, purpose: DeliveryPurpose, channel: DeliveryChannel, destination: String, hash: [UInt8], digits: Int,
                host: String, service: String, createdMillis: Int64, expiresMillis: Int64) {
        self.id = id
        self.purpose = purpose
        self.channel = channel
        self.destination = destination
        self.hash = hash
        self.digits = digits
        self.host = host
        self.service = service
        self.createdMillis = createdMillis
        self.expiresMillis = expiresMillis
    }
}

/// Making and checking delivered codes.
public enum DeliveredCode {
    public static let digitRange = 6...8

    /// A new random code of `digits` digits (uniform, leading zeros kept), its id, and its record.
    public static func make(purpose: DeliveryPurpose, channel: DeliveryChannel, destination: String, digits: Int,
                            host: String, service: String, nowMillis: Int64, validityMillis: Int64,
                            pepper: SecretBytes) throws -> (code: String, record: DeliveredCodeRecord) {
        precondition(digitRange.contains(digits))
        var code = ""
        for _ in 0..<digits { code += String(try Crypto.randomInt(below: 10)) }
        let idBytes = try Crypto.randomBytes(8)
        let id = Int64(bitPattern: idBytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) & Int64.max
        let record = DeliveredCodeRecord(id: id, purpose: purpose, channel: channel, destination: destination,
                                         hash: hash(code, id: id, pepper: pepper), digits: digits, host: host, service: service,
                                         createdMillis: nowMillis, expiresMillis: nowMillis + validityMillis)
        return (code, record)
    }

    public static func hash(_ code: String, id: Int64, pepper: SecretBytes) -> [UInt8] {
        var message = Array("twofold-delivered\0".utf8)
        withUnsafeBytes(of: id.bigEndian) { message += $0 }
        message += Array(code.utf8)
        defer { Crypto.wipe(&message) }
        return Crypto.hmac(.sha256, key: pepper, data: message)
    }

    /// The digits of `answer` if it has the form of a `digits`-digit code (spaces and dashes ignored).
    public static func canonical(_ answer: String, digits: Int) -> String? {
        let kept = answer.unicodeScalars.filter { $0 != " " && $0 != "-" }
        guard kept.count == digits, kept.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return String(String.UnicodeScalarView(kept))
    }

    /// Whether `answer` is `record`'s code: hashed and compared in constant time, whatever else.
    public static func matches(_ answer: String, _ record: DeliveredCodeRecord, pepper: SecretBytes) -> Bool {
        guard let code = canonical(answer, digits: record.digits) else { return false }
        var computed = hash(code, id: record.id, pepper: pepper)
        defer { Crypto.wipe(&computed) }
        return Crypto.constantTimeEqual(computed, record.hash)
    }
}
