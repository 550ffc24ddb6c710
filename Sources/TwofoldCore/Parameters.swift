import TwofoldCrypto

/// Which one-time-code scheme an enrollment uses.
public enum OTPMethod: String, Codable, Sendable, CaseIterable {
    /// RFC 6238, time-based.
    case totp
    /// RFC 4226, counter-based.
    case hotp
}

/// The parameters of one enrollment: they travel in the otpauth URI and never change afterwards.
public struct OTPParameters: Codable, Sendable, Equatable {
    public var method: OTPMethod
    public var algorithm: HashAlgorithm
    /// 6 to 8.
    public var digits: Int
    /// Seconds per TOTP step (ignored for HOTP).
    public var period: Int

    public init(method: OTPMethod = .totp, algorithm: HashAlgorithm = .sha1, digits: Int = 6, period: Int = 30) {
        self.method = method
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }

    /// Throws `CoreError.invalidParameters` with a reason when digits or period are out of range.
    public func validate() throws {
        guard (6...8).contains(digits) else { throw CoreError.invalidParameters("digits must be 6, 7 or 8 (got \(digits))") }
        guard (1...300).contains(period) else { throw CoreError.invalidParameters("period must be 1 to 300 seconds (got \(period))") }
    }
}

/// Errors of the pure core. Messages never contain a secret or a code.
public enum CoreError: Error, Equatable, CustomStringConvertible {
    case invalidParameters(String)
    case invalidBase32(String)
    case invalidURI(String)
    /// A google-authenticator file or users.oath line that cannot be imported.
    case invalidImport(String)

    public var description: String {
        switch self {
        case .invalidParameters(let r): return "invalid OTP parameters: \(r)"
        case .invalidBase32(let r): return "invalid base32 secret: \(r)"
        case .invalidURI(let r): return "invalid otpauth URI: \(r)"
        case .invalidImport(let r): return "cannot import: \(r)"
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, injectable for tests.
public protocol WallClock: Sendable {
    func nowMillis() -> Int64
}
