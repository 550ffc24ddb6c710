import TwofoldCrypto

/// Checks what a key made over the daemon's registration challenge (WebAuthn §7.1 and §8): the
/// relying party, presence (and verification when the policy asks), and the attestation. With an
/// AAGUID allow-list only a full attestation (packed, with a certificate chaining to the admin's
/// CA file) admits a key, since anyone can claim any AAGUID in self attestation.
public struct KeyRegistrationCheck: Sendable {
    public var rpID: String
    public var challenge: [UInt8]
    public var requireUserVerification: Bool
    /// Allowed AAGUIDs (16 bytes each); empty: any key.
    public var allowedAAGUIDs: [[UInt8]]
    /// PEM file of the CA certificates attestation must chain to (needed with an allow-list).
    public var caFile: String?

    public init(rpID: String, challenge: [UInt8], requireUserVerification: Bool, allowedAAGUIDs: [[UInt8]], caFile: String?) {
        self.rpID = rpID
        self.challenge = challenge
        self.requireUserVerification = requireUserVerification
        self.allowedAAGUIDs = allowedAAGUIDs
        self.caFile = caFile
    }

    /// A refusal, worded for the person registering.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// The new key (named `name`, added at `nowMillis`), or why it is refused.
    public func check(format: String, authData raw: [UInt8], signature: [UInt8], certificates: [[UInt8]], name: String,
                      nowMillis: Int64) throws -> Fido2Credential {
        let data: AuthenticatorData
        do { data = try AuthenticatorData(raw) } catch { throw Refusal("the key's answer does not parse: \(error)") }
        guard let attested = data.attested else { throw Refusal("the key's answer holds no new credential") }
        guard data.isFor(rpID: rpID) else { throw Refusal("the key made a credential for another relying party") }
        guard data.isUserPresent else { throw Refusal("the key was not touched (no user presence)") }
        if requireUserVerification && !data.isUserVerified {
            throw Refusal("the policy requires user verification, and the key did not verify the user (set a PIN on it, or use a key with built-in verification)")
        }
        let certified = try attestation(format: format, data: data, attested: attested, signature: signature, certificates: certificates)
        if !allowedAAGUIDs.isEmpty {
            guard certified else { throw Refusal("the policy admits only listed key models, and this key gave no attestation certificate to prove its model") }
            guard allowedAAGUIDs.contains(attested.aaguid) else {
                throw Refusal("this key model (AAGUID \(Fido2Credential.uuidText(attested.aaguid))) is not on the policy's list")
            }
        }
        return Fido2Credential(name: name, id: attested.credentialID, algorithm: attested.algorithm, publicKey: attested.publicKey,
                               signCount: data.signCount, aaguid: attested.aaguid, addedAtMillis: nowMillis)
    }

    /// Verifies the attestation statement; true when a certificate chaining to the CA file made it.
    private func attestation(format: String, data: AuthenticatorData, attested: AuthenticatorData.AttestedCredential,
                             signature: [UInt8], certificates: [[UInt8]]) throws -> Bool {
        switch format {
        case "none":
            return false
        case "packed" where certificates.isEmpty:
            // Self attestation: the new credential signs authData ‖ clientDataHash itself.
            let key = Fido2Credential(name: "", id: attested.credentialID, algorithm: attested.algorithm, publicKey: attested.publicKey)
            guard Fido2Factor.verify(key, message: data.raw + challenge, signature: signature) else {
                throw Refusal("the key's self attestation does not verify")
            }
            return false
        case "packed":
            return try certified(message: data.raw + challenge, signature: signature, certificates: certificates, aaguid: attested.aaguid)
        case "fido-u2f":
            guard attested.algorithm == .es256 else { throw Refusal("a U2F attestation must be over a P-256 key") }
            let message = [0x00] + data.rpIDHash + challenge + attested.credentialID + attested.publicKey
            return try certified(message: message, signature: signature, certificates: certificates, aaguid: nil)
        default:
            throw Refusal("attestation format '\(format)' is not supported (packed, fido-u2f or none)")
        }
    }

    private func certified(message: [UInt8], signature: [UInt8], certificates: [[UInt8]], aaguid: [UInt8]?) throws -> Bool {
        let parsed = certificates.compactMap(Certificate.init(der:))
        guard let leaf = parsed.first, parsed.count == certificates.count else { throw Refusal("the attestation certificate does not parse") }
        guard leaf.verifies(message: message, signature: signature) else { throw Refusal("the attestation signature does not verify") }
        if let aaguid, let claimed = leaf.aaguidExtension, claimed != aaguid {
            throw Refusal("the attestation certificate is for another key model than the key claims")
        }
        guard let caFile else { return false }
        guard let chains = leaf.chains(to: caFile, intermediates: Array(parsed.dropFirst())) else {
            throw Refusal("the attestation CA file \(caFile) cannot be read")
        }
        guard chains else {
            if allowedAAGUIDs.isEmpty { return false }
            throw Refusal("the key's attestation certificate does not chain to a CA in \(caFile)")
        }
        return true
    }
}
