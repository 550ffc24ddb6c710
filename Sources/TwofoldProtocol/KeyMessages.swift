/// What twofoldctl needs to make a credential on a key for this installation (`keyBegin`). Bytes
/// travel as base64 (standard alphabet, padded).
public struct KeyChallenge: Codable, Sendable, Equatable {
    /// The installation's relying-party id (`fido2_rp_id`), e.g. `pam://example.com`.
    public var rpID: String
    /// The relying party's display name.
    public var rpName: String
    /// The clientDataHash the key signs: the daemon's random, single-use challenge (32 bytes).
    public var challenge: String
    /// The user handle stored on the key (1 to 64 bytes).
    public var userID: String
    public var userName: String
    /// The name the new key will have.
    public var name: String
    /// Credential ids of the user's keys already registered: a key holding one refuses (no double registration).
    public var exclude: [String]
    /// The policy asks for user verification (a PIN or built-in UV) at login: ask for it now too.
    public var userVerification: Bool
    /// How long twofoldctl waits for the touch.
    public var timeoutMillis: Int
    /// How long the challenge is valid from now.
    public var validMillis: Int

    public init(rpID: String, rpName: String, challenge: String, userID: String, userName: String, name: String,
                exclude: [String], userVerification: Bool, timeoutMillis: Int, validMillis: Int) {
        self.rpID = rpID
        self.rpName = rpName
        self.challenge = challenge
        self.userID = userID
        self.userName = userName
        self.name = name
        self.exclude = exclude
        self.userVerification = userVerification
        self.timeoutMillis = timeoutMillis
        self.validMillis = validMillis
    }
}

/// What the key made over a `KeyChallenge` (libfido2's fido_cred_t), as is: the daemon checks it.
public struct KeyRegistration: Codable, Sendable, Equatable {
    /// The attestation statement format: `packed`, `fido-u2f`, `none`, ...
    public var format: String
    /// The raw authenticator data (attested credential data included), base64.
    public var authData: String
    /// The attestation signature, base64 (empty for `none`).
    public var signature: String
    /// The attestation certificate chain, DER, base64, leaf first (empty: self or no attestation).
    public var certificates: [String]

    public init(format: String, authData: String, signature: String, certificates: [String]) {
        self.format = format
        self.authData = authData
        self.signature = signature
        self.certificates = certificates
    }
}

/// One security key as listings show it. Nothing in it is secret.
public struct KeyInfo: Codable, Sendable, Equatable {
    public var user: String
    public var name: String
    /// `ES256` or `EdDSA`.
    public var algorithm: String
    /// The authenticator model, a UUID (all zeros when the key gave none).
    public var aaguid: String
    public var signCount: UInt32
    public var addedMillis: Int64
    public var lastUsedMillis: Int64?
    /// The first 8 bytes of the credential id, hex: tells two keys of one name apart in logs.
    public var credentialPrefix: String

    public init(user: String, name: String, algorithm: String, aaguid: String, signCount: UInt32, addedMillis: Int64,
                lastUsedMillis: Int64?, credentialPrefix: String) {
        self.user = user
        self.name = name
        self.algorithm = algorithm
        self.aaguid = aaguid
        self.signCount = signCount
        self.addedMillis = addedMillis
        self.lastUsedMillis = lastUsedMillis
        self.credentialPrefix = credentialPrefix
    }
}

/// FIDO2 keys as a daemon is set up for them, for `twofoldctl doctor`.
public struct Fido2Info: Codable, Sendable, Equatable {
    /// `fido2_rp_id` (nil: not set, so no key is offered or registered here).
    public var rpID: String?
    /// Whether some login may use a key by the policy (the kind `fido2` in a list of the chain).
    public var allowedByPolicy: Bool
    public var userVerification: Bool
    /// The policy's AAGUID allow-list (empty: any key).
    public var aaguids: [String]
    /// `fido2_attestation_ca`, and how many certificates it holds (nil: unreadable or not set).
    public var attestationCAFile: String?
    public var attestationCAs: Int?
    /// Users with at least one key, and keys in all.
    public var users: Int
    public var keys: Int
    /// What is wrong, in the daemon's words (unreadable CA file, an allow-list without a CA file).
    public var problems: [String]

    public init(rpID: String?, allowedByPolicy: Bool, userVerification: Bool, aaguids: [String], attestationCAFile: String?,
                attestationCAs: Int?, users: Int, keys: Int, problems: [String]) {
        self.rpID = rpID
        self.allowedByPolicy = allowedByPolicy
        self.userVerification = userVerification
        self.aaguids = aaguids
        self.attestationCAFile = attestationCAFile
        self.attestationCAs = attestationCAs
        self.users = users
        self.keys = keys
        self.problems = problems
    }
}
