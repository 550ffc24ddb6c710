/// Control requests that `twofoldctl` (and the tests) send in a `REQUEST` frame as JSON.
/// The daemon authorizes each one by the peer's credentials: user requests act on the caller's
/// own account (root may name any user); admin requests need root or the admin group.
public enum ControlRequest: Codable, Sendable, Equatable {
    /// Liveness check; any peer.
    case ping
    /// Issue a new secret (pending until confirmed). `user` nil: the caller.
    case enrollBegin(user: String?)
    /// Confirm the pending secret with a current code; activates it and returns recovery codes.
    case enrollConfirm(user: String?, code: String)
    /// Enrollment, requirement and lock state. `user` nil: the caller.
    case status(user: String?)
    /// Admin: provision an active enrollment from an otpauth URI.
    case importURI(user: String, uri: String)
    /// Admin: remove the secret and recovery codes; the user must enroll again.
    case revoke(user: String)
    /// Admin: clear failures and any lock.
    case unlock(user: String)
    /// Admin: one page of users, by name.
    case listUsers(after: String?, limit: Int)
    /// Admin: audit records.
    case audit(user: String?, sinceMillis: Int64?, outcome: String?, limit: Int)
}

/// The daemon's answer to a `ControlRequest`.
public enum ControlResponse: Codable, Sendable, Equatable {
    case ok
    /// `code` is one of `ControlErrorCode`; `message` is for people and never holds a secret.
    case error(code: ControlErrorCode, message: String)
    /// A fresh secret to show the enrolling user once.
    case enrollment(EnrollmentOffer)
    /// Recovery codes to show once.
    case recoveryCodes([String])
    case status(UserStatus)
    case users([UserStatus])
    case audit([AuditEntry])
}

/// Why a control request failed.
public enum ControlErrorCode: String, Codable, Sendable, Equatable {
    case permissionDenied, notFound, invalidRequest, invalidCode, conflict, locked, unavailable
}

/// A new secret: the otpauth URI (for the QR code) and the base32 secret for typing.
public struct EnrollmentOffer: Codable, Sendable, Equatable {
    public var user: String
    public var uri: String
    public var secretBase32: String
    public var digits: Int
    public var period: Int
    public var algorithm: String

    public init(user: String, uri: String, secretBase32: String, digits: Int, period: Int, algorithm: String) {
        self.user = user
        self.uri = uri
        self.secretBase32 = secretBase32
        self.digits = digits
        self.period = period
        self.algorithm = algorithm
    }
}

/// What is known of a user (never a secret).
public struct UserStatus: Codable, Sendable, Equatable {
    public var user: String
    /// "none", "pending" or "active".
    public var enrollment: String
    /// "totp" or "hotp" when enrolled.
    public var method: String?
    public var required: Bool
    /// Why required or not (e.g. "policy: everyone", "admin override: exempt").
    public var requiredBecause: String
    public var recoveryCodesLeft: Int
    public var failures: Int
    public var lockedUntilMillis: Int64?
    public var lastSuccessMillis: Int64?

    public init(user: String, enrollment: String, method: String?, required: Bool, requiredBecause: String,
                recoveryCodesLeft: Int, failures: Int, lockedUntilMillis: Int64?, lastSuccessMillis: Int64?) {
        self.user = user
        self.enrollment = enrollment
        self.method = method
        self.required = required
        self.requiredBecause = requiredBecause
        self.recoveryCodesLeft = recoveryCodesLeft
        self.failures = failures
        self.lockedUntilMillis = lockedUntilMillis
        self.lastSuccessMillis = lastSuccessMillis
    }
}

/// One audit record as the CLI shows it.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var timeMillis: Int64
    public var action: String
    public var user: String?
    public var service: String?
    public var rhost: String?
    public var tty: String?
    public var peerUID: UInt32?
    public var outcome: String
    public var reason: String?

    public init(timeMillis: Int64, action: String, user: String?, service: String?, rhost: String?, tty: String?,
                peerUID: UInt32?, outcome: String, reason: String?) {
        self.timeMillis = timeMillis
        self.action = action
        self.user = user
        self.service = service
        self.rhost = rhost
        self.tty = tty
        self.peerUID = peerUID
        self.outcome = outcome
        self.reason = reason
    }
}
