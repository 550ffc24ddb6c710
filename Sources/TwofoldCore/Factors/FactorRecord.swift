import TwofoldCrypto

/// A stored OTP factor of a user as the store hands it over, the secret opened.
public struct FactorRecord: Sendable {
    /// Unique per user; see `FactorName`.
    public var name: String
    public var parameters: OTPParameters
    /// The OTP secret, opened; nil where the store did not open it (listings).
    public var secret: SecretBytes?
    /// Replay step or HOTP counter, and drift: per factor.
    public var verify: VerifyState
    public var addedAtMillis: Int64
    /// The last login with this factor; nil: never.
    public var lastUsedMillis: Int64?

    public init(name: String, parameters: OTPParameters = OTPParameters(), secret: SecretBytes? = nil,
                verify: VerifyState = VerifyState(), addedAtMillis: Int64 = 0, lastUsedMillis: Int64? = nil) {
        self.name = name
        self.parameters = parameters
        self.secret = secret
        self.verify = verify
        self.addedAtMillis = addedAtMillis
        self.lastUsedMillis = lastUsedMillis
    }

    public var kind: FactorKind { parameters.method == .hotp ? .hotp : .totp }

    /// The factor that checks answers for this record; nil without an opened secret.
    public func factor() -> (any Factor)? {
        guard let secret else { return nil }
        switch parameters.method {
        case .totp: return TOTPFactor(name: name, secret: secret, parameters: parameters, state: verify)
        case .hotp: return HOTPFactor(name: name, secret: secret, parameters: parameters, state: verify)
        }
    }
}

/// Factor names: what a user types after `--name` and reads in `twofoldctl factors`.
public enum FactorName {
    /// The name of a first enrollment, and of an enrollment migrated from schema v2.
    public static let first = "app"
    /// The name `import` gives unless told.
    public static let imported = "imported"
    public static let maxLength = 32

    /// 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit ("recovery" is the
    /// recovery set's). No '/', so a name cannot blur the sealing AAD.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= maxLength, name != RecoveryCodeFactor.setName else { return false }
        let allowed: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }
        return allowed(first) && first != 0x2e && first != 0x5f && first != 0x2d && name.utf8.allSatisfy(allowed)
    }

    /// `base` if free, else `base-2`, `base-3`, …: the default name of a further enrollment.
    public static func next(_ base: String, taken: Set<String>) -> String {
        guard taken.contains(base) else { return base }
        var n = 2
        while taken.contains("\(base)-\(n)") { n += 1 }
        return "\(base)-\(n)"
    }
}
