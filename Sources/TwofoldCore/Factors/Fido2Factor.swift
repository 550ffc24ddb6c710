import TwofoldCrypto

/// What a key sent back for a login's challenge (the module's key response).
public struct KeyAssertion: Sendable, Equatable {
    public var credentialID: [UInt8]
    public var authenticatorData: [UInt8]
    public var signature: [UInt8]

    public init(credentialID: [UInt8], authenticatorData: [UInt8], signature: [UInt8]) {
        self.credentialID = credentialID
        self.authenticatorData = authenticatorData
        self.signature = signature
    }
}

/// What a key's assertion proves, each refusal named for the audit.
public enum KeyVerdict: Sendable, Equatable {
    /// Proven once `use` is durable (the store moves the counter forward, only if it still may).
    case accepted(FactorUse)
    /// No key of this user has that credential id.
    case unknownCredential
    /// The authenticator data does not parse.
    case malformed(String)
    /// The signature does not verify with the registered public key.
    case badSignature
    /// Made for another relying party (another installation, or a web site).
    case wrongRelyingParty
    case noUserPresence
    case noUserVerification
    /// The counter did not move forward: two keys share one credential (a clone), or a replay.
    case clonedKey(name: String, stored: UInt32, presented: UInt32)
}

/// A FIDO2 security key as a second factor (WebAuthn §7.2, a relying party's checks), for the
/// keys of one user. Unlike the code factors (`Factor`) its answer is binary and it challenges
/// first, so it is checked on its own rather than in a `FactorSet`; the rest (throttle, commit,
/// audit) is the same. Nothing compared here is secret: ids, hashes and flags are public.
public struct Fido2Factor: Sendable {
    public var keys: [Fido2Credential]
    public var rpID: String
    /// The login's single-use challenge: the clientDataHash the key signed.
    public var challenge: [UInt8]
    public var requireUserVerification: Bool

    public init(keys: [Fido2Credential], rpID: String, challenge: [UInt8], requireUserVerification: Bool) {
        self.keys = keys
        self.rpID = rpID
        self.challenge = challenge
        self.requireUserVerification = requireUserVerification
    }

    /// Checks `assertion`. The signature is checked before anything else is believed, so an
    /// answer nobody's key signed can neither pass nor raise a clone alarm.
    public func check(_ assertion: KeyAssertion) -> KeyVerdict {
        guard let key = keys.first(where: { $0.id == assertion.credentialID }) else { return .unknownCredential }
        let data: AuthenticatorData
        do { data = try AuthenticatorData(assertion.authenticatorData) } catch { return .malformed("\(error)") }
        guard Self.verify(key, message: assertion.authenticatorData + challenge, signature: assertion.signature) else { return .badSignature }
        guard data.isFor(rpID: rpID) else { return .wrongRelyingParty }
        guard data.isUserPresent else { return .noUserPresence }
        guard !requireUserVerification || data.isUserVerified else { return .noUserVerification }
        guard Fido2Credential.counterAdvances(from: key.signCount, to: data.signCount) else {
            return .clonedKey(name: key.name, stored: key.signCount, presented: data.signCount)
        }
        return .accepted(.keyAssertion(name: key.name, credential: key.id, signCount: data.signCount))
    }

    static func verify(_ key: Fido2Credential, message: [UInt8], signature: [UInt8]) -> Bool {
        switch key.algorithm {
        case .es256: Signatures.verifyES256(publicKey: key.publicKey, message: message, signature: signature)
        case .edDSA: Signatures.verifyEd25519(publicKey: key.publicKey, message: message, signature: signature)
        }
    }
}
