import CCrypto
import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport

/// The FIDO2 factor's checks (WebAuthn §7.1, §7.2) on real signatures from a software key.
@Suite("FIDO2: registration and assertion checks")
struct Fido2Tests {
    static let rpID = "pam://twofold.test"

    static func challenge() throws -> KeyChallenge {
        KeyChallenge(rpID: rpID, rpName: "Twofold", challenge: Data(try Crypto.randomBytes(32)).base64EncodedString(),
                     userID: "dXNlcg==", userName: "user", name: "key", exclude: [], userVerification: false, timeoutMillis: 30_000,
                     validMillis: 120_000)
    }

    static func check(_ challenge: KeyChallenge, uv: Bool = false, aaguids: [[UInt8]] = [], caFile: String? = nil) -> KeyRegistrationCheck {
        KeyRegistrationCheck(rpID: rpID, challenge: Array(Data(base64Encoded: challenge.challenge)!), requireUserVerification: uv,
                             allowedAAGUIDs: aaguids, caFile: caFile)
    }

    static func register(_ key: SoftKey, _ challenge: KeyChallenge, _ registration: KeyRegistration, check: KeyRegistrationCheck) throws -> Fido2Credential {
        try check.check(format: registration.format, authData: Array(Data(base64Encoded: registration.authData)!),
                        signature: Array(Data(base64Encoded: registration.signature)!),
                        certificates: registration.certificates.map { Array(Data(base64Encoded: $0)!) }, name: "key", nowMillis: 1)
    }

    @Test("a self-attested registration gives the key's credential, ES256 and EdDSA")
    func selfAttested() throws {
        for algorithm in COSEAlgorithm.allCases {
            let key = try SoftKey(algorithm: algorithm)
            let challenge = try Self.challenge()
            let credential = try Self.register(key, challenge, key.register(challenge), check: Self.check(challenge))
            #expect(credential.id == key.credentialID && credential.publicKey == key.publicKey && credential.algorithm == algorithm)
            #expect(credential.aaguid == SoftKey.testAAGUID && credential.signCount == 0)
        }
    }

    @Test("registrations refused: another challenge, another relying party, no touch, no UV when required, bad attestation")
    func registrationRefusals() throws {
        let key = try SoftKey()
        let challenge = try Self.challenge()
        var other = challenge
        other.rpID = "pam://elsewhere.test"
        let cases: [(KeyRegistration, KeyRegistrationCheck, String)] = [
            (key.register(challenge, signOver: try Crypto.randomBytes(32)), Self.check(challenge), "self attestation does not verify"),
            (key.register(other), Self.check(challenge), "another relying party"),
            (key.register(challenge, userVerified: false), Self.check(challenge, uv: true), "user verification"),
            (key.register(challenge), Self.check(challenge, aaguids: [SoftKey.testAAGUID]), "no attestation certificate"),
        ]
        for (registration, check, expected) in cases {
            #expect(throws: KeyRegistrationCheck.Refusal.self) { _ = try Self.register(key, challenge, registration, check: check) }
            do { _ = try Self.register(key, challenge, registration, check: check) } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
        var untouched = key.register(challenge)
        var data = Array(Data(base64Encoded: untouched.authData)!)
        data[32] &= ~0x01
        untouched.authData = Data(data).base64EncodedString()
        #expect(throws: KeyRegistrationCheck.Refusal.self) { _ = try Self.register(key, challenge, untouched, check: Self.check(challenge)) }
    }

    @Test("an AAGUID allow-list admits a key whose attestation chains to the CA, and only a listed model")
    func attestationAllowList() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pki = try AttestationPKI.make(in: directory, aaguid: SoftKey.testAAGUID)
        let stranger = try AttestationPKI.make(in: directory, name: "stranger", aaguid: SoftKey.testAAGUID)
        let attestationKey = try SoftKey.loadPrivateKey(pem: pki.keyFile)
        defer { EVP_PKEY_free(attestationKey) }
        let key = try SoftKey()
        let challenge = try Self.challenge()
        let registration = key.register(challenge, attestation: (attestationKey, pki.certificateDER))
        let admitted = try Self.register(key, challenge, registration, check: Self.check(challenge, aaguids: [SoftKey.testAAGUID], caFile: pki.caFile))
        #expect(admitted.id == key.credentialID)
        // Another model on the list only; another vendor's CA; a certificate for another model.
        let otherModel = [UInt8](repeating: 0xAB, count: 16)
        #expect(throws: KeyRegistrationCheck.Refusal.self) {
            _ = try Self.register(key, challenge, registration, check: Self.check(challenge, aaguids: [otherModel], caFile: pki.caFile))
        }
        #expect(throws: KeyRegistrationCheck.Refusal.self) {
            _ = try Self.register(key, challenge, registration, check: Self.check(challenge, aaguids: [SoftKey.testAAGUID], caFile: stranger.caFile))
        }
        let mislabelled = try AttestationPKI.make(in: directory, name: "mislabelled", aaguid: otherModel)
        let mislabelledKey = try SoftKey.loadPrivateKey(pem: mislabelled.keyFile)
        defer { EVP_PKEY_free(mislabelledKey) }
        let lying = key.register(challenge, attestation: (mislabelledKey, mislabelled.certificateDER))
        #expect(throws: KeyRegistrationCheck.Refusal.self) {
            _ = try Self.register(key, challenge, lying, check: Self.check(challenge, aaguids: [SoftKey.testAAGUID], caFile: mislabelled.caFile))
        }
    }

    static func factor(_ key: SoftKey, signCount: UInt32 = 0, uv: Bool = false) throws -> (Fido2Factor, KeyRequest) {
        let credential = Fido2Credential(name: "key", id: key.credentialID, algorithm: key.algorithm, publicKey: key.publicKey, signCount: signCount)
        let challenge = try Crypto.randomBytes(32)
        let request = KeyRequest(requireUserVerification: uv, timeoutMillis: 30_000, rpID: rpID, challenge: challenge,
                                 credentials: [key.credentialID], pinPrompt: "PIN: ")
        return (Fido2Factor(keys: [credential], rpID: rpID, challenge: challenge, requireUserVerification: uv), request)
    }

    static func assertion(_ response: KeyResponse) -> KeyAssertion {
        let fields = response.assertion!
        return KeyAssertion(credentialID: fields.credentialID, authenticatorData: fields.authenticatorData, signature: fields.signature)
    }

    @Test("an assertion is accepted with its counter; each refusal is named")
    func assertions() throws {
        for algorithm in COSEAlgorithm.allCases {
            let key = try SoftKey(algorithm: algorithm)
            let (factor, request) = try Self.factor(key, signCount: 4)
            #expect(factor.check(Self.assertion(key.assert(request, counter: 5))) == .accepted(.keyAssertion(name: "key", credential: key.credentialID, signCount: 5)))
            #expect(factor.check(Self.assertion(key.assert(request, counter: 4))) == .clonedKey(name: "key", stored: 4, presented: 4))
            #expect(factor.check(Self.assertion(key.assert(request, counter: 3))) == .clonedKey(name: "key", stored: 4, presented: 3))
            #expect(factor.check(Self.assertion(key.assert(request, counter: 0))) == .clonedKey(name: "key", stored: 4, presented: 0))
            #expect(factor.check(Self.assertion(key.assert(request, rpID: "pam://elsewhere.test", counter: 9))) == .wrongRelyingParty)
            #expect(factor.check(Self.assertion(key.assert(request, userPresent: false, counter: 9))) == .noUserPresence)
            var forged = Self.assertion(key.assert(request, counter: 9))
            forged.authenticatorData[36] ^= 1
            #expect(factor.check(forged) == .badSignature)
            let stranger = try SoftKey(algorithm: algorithm)
            #expect(factor.check(Self.assertion(stranger.assert(request))) == .unknownCredential)
            var truncated = Self.assertion(key.assert(request, counter: 9))
            truncated.authenticatorData.removeLast()
            if case .malformed = factor.check(truncated) {} else { Issue.record("a truncated authenticator data must be malformed") }
        }
    }

    @Test("counters: 0 then 0 is a key without one; user verification when the policy requires it")
    func countersAndVerification() throws {
        let key = try SoftKey()
        let (factor, request) = try Self.factor(key)
        #expect(factor.check(Self.assertion(key.assert(request, counter: 0))) == .accepted(.keyAssertion(name: "key", credential: key.credentialID, signCount: 0)))
        let (strict, strictRequest) = try Self.factor(key, uv: true)
        #expect(strict.check(Self.assertion(key.assert(strictRequest, counter: 1))) == .noUserVerification)
        if case .accepted = strict.check(Self.assertion(key.assert(strictRequest, userVerified: true, counter: 2))) {} else {
            Issue.record("a verified assertion must pass")
        }
    }

    @Test("key step payloads: round trips, and every malformed response refused")
    func payloads() throws {
        let request = KeyRequest(requireUserVerification: true, timeoutMillis: 30_000, rpID: Self.rpID, challenge: Array(repeating: 7, count: 32),
                                 credentials: [[1, 2, 3], Array(repeating: 9, count: 200)], pinPrompt: "PIN: ")
        let encoded = try #require(request.encoded())
        #expect(try KeyRequest.decode(encoded) == request)
        #expect(throws: (any Error).self) { try KeyRequest.decode(encoded + [0]) }
        #expect(throws: (any Error).self) { try KeyRequest.decode(Array(encoded.dropLast())) }
        // Too many credentials, or too large for a PAYLOAD: not encoded at all.
        #expect(KeyRequest(requireUserVerification: false, timeoutMillis: 30_000, rpID: "x", challenge: Array(repeating: 0, count: 32),
                           credentials: Array(repeating: [1], count: 17), pinPrompt: "").encoded() == nil)
        #expect(KeyRequest(requireUserVerification: false, timeoutMillis: 30_000, rpID: "x", challenge: Array(repeating: 0, count: 32),
                           credentials: Array(repeating: Array(repeating: 1, count: 1_000), count: 9), pinPrompt: "").encoded() == nil)
        let response = KeyResponse(status: .ok, assertion: .init(credentialID: [1], authenticatorData: Array(repeating: 0, count: 37), signature: [2]))
        #expect(try KeyResponse.decode(response.encoded()) == response)
        #expect(try KeyResponse.decode(KeyResponse(status: .noDevice, fidoError: -7).encoded()) == KeyResponse(status: .noDevice, fidoError: -7))
        for bad in [[], [0x6B], [0x6B, 2, 0, 0, 0, 0, 0], [0x6B, 1, 99, 0, 0, 0, 0], [0x6B, 1, 2, 0, 0, 0, 0, 0],
                    Array(response.encoded().dropLast()), response.encoded() + [1]] as [[UInt8]] {
            #expect(throws: KeyResponse.Invalid.self) { try KeyResponse.decode(bad) }
        }
    }

    @Test("CBOR: lengths past the end, deep nesting, indefinite lengths and tags refused")
    func cborBounds() {
        for bad: [UInt8] in [[0x5A, 0xFF, 0xFF, 0xFF, 0xFF], [0xA5, 0x01], Array(repeating: 0x81, count: 12) + [0x00], [0x5F], [0xC0, 0x00], [0x19, 0x01]] {
            var offset = 0
            #expect(throws: CBOR.Invalid.self) { _ = try CBOR.decode(bad, offset: &offset) }
        }
        var offset = 0
        #expect((try? CBOR.decode([0xA1, 0x20, 0x41, 0x07], offset: &offset)) == .map([(.negative(0), .bytes([7]))]))
    }
}
