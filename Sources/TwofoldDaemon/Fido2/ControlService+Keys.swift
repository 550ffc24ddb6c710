import Foundation
import Synchronization
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldStore

/// What one control connection holds between its requests: the key registration in progress
/// (its challenge lives here only, so it is single-use and cannot be finished on another
/// connection) and the backup being fetched (it goes with the connection).
final class ControlSession: Sendable {
    struct PendingKey: Sendable {
        var user: String
        var name: String
        var challenge: [UInt8]
        var requireUV: Bool
        var expiresMillis: Int64
    }

    let pendingKey = Mutex<PendingKey?>(nil)
    let backup = Mutex<BackupFile?>(nil)
    init() {}
}

/// FIDO2 security keys: registering one (a current factor of the user, as for any new
/// credential, or an admin), listing and removing them. Keys live in the store, so on a fleet an
/// admin's removal holds on every host at the next login.
extension ControlService {
    static let keyChallengeMillis: Int64 = 120_000

    func beginKey(_ user: String, name: String?, code: String?, peer: PeerCredentials, admin: Bool, session: ControlSession?) async throws -> ControlResponse {
        guard let session else { throw ControlFailure(.invalidRequest, "registering a key needs both steps on one connection") }
        guard let rpID = live.current.fido2.rpID else {
            throw ControlFailure(.unavailable, "security keys are not set up on the server: set fido2_rp_id in twofoldd.conf (e.g. pam://example.com)")
        }
        let record = try await store.user(user)
        let keys = record?.keys ?? []
        let name = try keyName(name, taken: keys)
        if !admin { try await mayAddKey(user, record: record, code: code, peer: peer) }
        let current = policy.current
        let challenge = try Crypto.randomBytes(32)
        let userID = Array(Crypto.sha256(Array("twofold\0\(rpID)\0\(user)".utf8)).prefix(16))
        session.pendingKey.withLock {
            $0 = .init(user: user, name: name, challenge: challenge, requireUV: current.document.fido2UserVerification,
                       expiresMillis: clock.nowMillis() + Self.keyChallengeMillis)
        }
        return .keyChallenge(KeyChallenge(
            rpID: rpID, rpName: "Twofold", challenge: Data(challenge).base64EncodedString(), userID: Data(userID).base64EncodedString(),
            userName: user, name: name, exclude: keys.map { Data($0.id).base64EncodedString() },
            userVerification: current.document.fido2UserVerification, timeoutMillis: touchMillisForRegistration(),
            validMillis: Int(Self.keyChallengeMillis)))
    }

    /// How long `key add` waits for the touch: the configured time, but short enough that the
    /// connection's idle timeout cannot end it before the second step (a PIN may be typed too).
    private func touchMillisForRegistration() -> Int {
        live.current.fido2.fitting(idleTimeout: live.current.idleTimeoutSeconds).touchTimeoutSeconds * 1000
    }

    /// The key's name: the one asked for (free, valid), or "key", "key-2", ...
    private func keyName(_ name: String?, taken keys: [Fido2Credential]) throws -> String {
        let names = Set(keys.map(\.name))
        guard let name else { return FactorName.next("key", taken: names) }
        guard FactorName.isValid(name) else {
            throw ControlFailure(.invalidRequest, "a key name is 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        }
        guard !names.contains(name) else { throw ControlFailure(.conflict, "a key named '\(name)' is already registered; remove it first or pick another name") }
        return name
    }

    /// A user adding their own key: keys allowed somewhere, self-enrollment for a first factor, and
    /// a current code when they have a factor (malware in a session must not add its own key).
    private func mayAddKey(_ user: String, record: UserRecord?, code: String?, peer: PeerCredentials) async throws {
        let current = policy.current
        guard current.kindsAllowedAnywhere.union(record?.factorKinds ?? []).contains(.fido2) else {
            throw ControlFailure(.permissionDenied, "security keys are off: the policy allows no fido2 factor; ask your administrator")
        }
        guard record?.hasFactor == true else {
            let (required, _) = current.requirement(user: user, service: nil, host: HostName.local, override: record?.requirement ?? .policy)
            if !required && !current.document.selfEnrollment {
                throw ControlFailure(.permissionDenied, "policy does not let users turn on 2FA themselves; ask an administrator")
            }
            return
        }
        guard let code else {
            throw ControlFailure(.invalidRequest, "give a current code of one of your factors to add a key (a recovery code works too)")
        }
        try await requireCurrentCode(code, user: user, peer: peer, purpose: "key")
    }

    func finishKey(_ registration: KeyRegistration, peer: PeerCredentials, session: ControlSession?) async throws -> ControlResponse {
        guard let pending = session?.pendingKey.withLock({ value -> ControlSession.PendingKey? in defer { value = nil }; return value }) else {
            throw ControlFailure(.invalidRequest, "no key registration is in progress on this connection: run twofoldctl key add again")
        }
        guard clock.nowMillis() < pending.expiresMillis else {
            throw ControlFailure(.invalidCode, "the registration challenge expired: run twofoldctl key add again")
        }
        let key: Fido2Credential
        do {
            key = try keyCheck(pending).check(format: registration.format, authData: try Self.base64(registration.authData),
                                              signature: try Self.base64(registration.signature),
                                              certificates: try registration.certificates.map(Self.base64), name: pending.name,
                                              nowMillis: clock.nowMillis())
        } catch let refusal as KeyRegistrationCheck.Refusal {
            await audit("key", user: pending.user, peer: peer, outcome: "failure", reason: "key '\(pending.name)' refused: \(refusal.description)")
            throw ControlFailure(.invalidRequest, "the key is refused: \(refusal.description)")
        }
        do {
            try await store.addKey(user: pending.user, key)
        } catch StoreError.conflict {
            throw ControlFailure(.conflict, "this key is already registered, to this or another account")
        }
        await audit("key", user: pending.user, peer: peer, outcome: "success",
                    reason: "key '\(key.name)' added (\(key.algorithm.name), model \(key.aaguidText), credential \(Self.prefix(key.id)))")
        return .keys([Self.info(pending.user, key)])
    }

    private func keyCheck(_ pending: ControlSession.PendingKey) throws -> KeyRegistrationCheck {
        guard let rpID = live.current.fido2.rpID else { throw ControlFailure(.unavailable, "security keys are no longer set up on the server (fido2_rp_id)") }
        return KeyRegistrationCheck(rpID: rpID, challenge: pending.challenge, requireUserVerification: pending.requireUV,
                                    allowedAAGUIDs: policy.current.fido2AAGUIDs, caFile: live.current.fido2.attestationCAFile)
    }

    func removeKeys(_ user: String, name: String?, code: String?, peer: PeerCredentials, admin: Bool) async throws -> ControlResponse {
        guard let record = try await store.user(user), !record.keys.isEmpty, name == nil || record.keys.contains(where: { $0.name == name }) else {
            throw ControlFailure(.notFound, "'\(user)' has no security key\(name.map { " named '\($0)'" } ?? "")")
        }
        if !admin {
            guard name != nil else { throw ControlFailure(.permissionDenied, "removing all of a user's keys at once is for admins") }
            var after = record
            after.keys.removeAll { $0.name == name }
            let (required, because) = policy.current.requirement(user: user, service: nil, host: HostName.local, override: record.requirement)
            if required && !after.hasFactor {
                throw ControlFailure(.permissionDenied, "that key is the last factor and 2FA is required for '\(user)' (\(because))")
            }
            guard let code else { throw ControlFailure(.invalidRequest, "give a current code of one of your factors to remove a key") }
            try await requireCurrentCode(code, user: user, peer: peer, purpose: "key")
        }
        let removed = try await store.removeKey(user: user, name: name)
        await audit("key", user: user, peer: peer, outcome: "success",
                    reason: name.map { "key '\($0)' removed" } ?? "\(removed) key\(removed == 1 ? "" : "s") removed")
        return .ok
    }

    func keys(of user: String) async throws -> [KeyInfo] {
        (try await store.user(user))?.keys.map { Self.info(user, $0) } ?? []
    }

    func allKeys() async throws -> [KeyInfo] {
        var result: [KeyInfo] = []
        var after: String?
        while true {
            let page = try await store.listKeys(after: after, limit: 1_000)
            result += page.map { Self.info($0.user, $0.key) }
            guard page.count >= 1_000, let last = page.last else { return result }
            after = last.user
        }
    }

    /// Security keys as this daemon is set up for them, for doctor.
    func fido2Info(_ configuration: DaemonConfiguration) async -> Fido2Info {
        let current = policy.current
        let allowed = current.kindsAllowedAnywhere.contains(.fido2)
        let caFile = configuration.fido2.attestationCAFile
        let caCount = caFile.flatMap(Certificate.countPEM)
        var problems: [String] = []
        if allowed && configuration.fido2.rpID == nil { problems.append("the policy allows fido2, but fido2_rp_id is not set: no key is offered") }
        if !current.fido2AAGUIDs.isEmpty && caFile == nil { problems.append("the policy lists key models, but fido2_attestation_ca is not set: no key can be registered") }
        if let caFile, caCount == nil { problems.append("\(caFile) cannot be read or holds no certificate") }
        let keys = (try? await allKeys()) ?? []
        return Fido2Info(rpID: configuration.fido2.rpID, allowedByPolicy: allowed, userVerification: current.document.fido2UserVerification,
                         aaguids: current.document.fido2AAGUIDs, attestationCAFile: caFile, attestationCAs: caCount,
                         users: Set(keys.map(\.user)).count, keys: keys.count, problems: problems)
    }

    static func info(_ user: String, _ key: Fido2Credential) -> KeyInfo {
        KeyInfo(user: user, name: key.name, algorithm: key.algorithm.name, aaguid: key.aaguidText, signCount: key.signCount,
                addedMillis: key.addedAtMillis, lastUsedMillis: key.lastUsedMillis, credentialPrefix: prefix(key.id))
    }

    static func prefix(_ id: [UInt8]) -> String { Crypto.hex(Array(id.prefix(8))) }

    static func base64(_ text: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text) else { throw ControlFailure(.invalidRequest, "a key registration field is not base64") }
        return Array(data)
    }
}

extension ControlService {
    /// Whether a policy document lets some login use a key (a list of the chain names fido2).
    static func allowsKeys(_ document: PolicyDocument) -> Bool {
        let lists = [document.factorKinds] + Array(document.serviceFactorKinds.values) + Array(document.hostFactorKinds.values)
        return lists.contains { $0.contains(FactorKind.fido2.rawValue) }
    }
}
