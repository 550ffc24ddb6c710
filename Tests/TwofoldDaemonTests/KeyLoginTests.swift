import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldStore
import TwofoldTestSupport

/// FIDO2 keys through the real daemon over its socket: registration on one connection, the key
/// step at login with a software key answering as the module would, the checks and their audit,
/// the fallback when no key is usable, clients that cannot talk to keys.
@Suite("twofoldd: FIDO2 keys")
struct KeyLoginTests {
    static let rpID = "pam://twofold.test"
    static let keyClient: ClientCapabilities = [.binaryPayload, .fido2]

    /// A daemon with the installation's rp id and a policy that lets logins use keys.
    static func daemon(uv: Bool = false, extraConfig: String = "") throws -> DaemonProcess {
        let daemon = try DaemonProcess(extraConfig: "fido2_rp_id = \(rpID)\n" + extraConfig)
        let policy = PolicyDocument(factorKinds: ["totp", "hotp", "recovery", "fido2"], throttleDelayMillis: 0, fido2UserVerification: uv)
        guard try daemon.control(.policySet(policy)) == .ok else { throw HarnessError("policy set failed") }
        return daemon
    }

    /// Registers `key` for `user` as root (an admin: no current code), both steps on one connection.
    @discardableResult
    static func register(_ key: SoftKey, user: String?, name: String? = nil, on daemon: DaemonProcess) throws -> ControlResponse {
        let connection = try daemon.connect()
        defer { connection.close() }
        let begun = try connection.request(ControlRequest.keyBegin(user: user, name: name, code: nil), as: ControlResponse.self)
        guard case .keyChallenge(let challenge) = begun else { return begun }
        #expect(challenge.rpID == rpID)
        return try connection.request(ControlRequest.keyFinish(key.register(challenge)), as: ControlResponse.self)
    }

    struct Transcript {
        var messages: [Message] = []
        var verdict: VerdictCode? {
            for case .verdict(let code, _) in messages { return code }
            return nil
        }
        var texts: String { messages.map { "\($0)" }.joined(separator: " | ") }
    }

    /// One login dialog: `key` answers a key step (nil: the module found no key), `code` any text prompt.
    static func login(_ user: String, on daemon: DaemonProcess, capabilities: ClientCapabilities = keyClient, service: String = "login",
                      key: ((KeyRequest) -> KeyResponse)?, code: String? = nil) throws -> Transcript {
        let connection = try daemon.connect()
        defer { connection.close() }
        try connection.send(.authStart(AuthStart(user: user, service: service, tty: "tty1", capabilities: capabilities)))
        var transcript = Transcript()
        while true {
            let message = try connection.receive()
            transcript.messages.append(message)
            switch message {
            case .promptEchoOff(_, let payload?):
                let request = try KeyRequest.decode(payload)
                let response = key?(request) ?? KeyResponse(status: .noDevice)
                try connection.send(.answer("", payload: response.encoded()))
            case .promptEchoOff, .promptEchoOn:
                try connection.send(.answer(code ?? ""))
            case .verdict, .protocolError:
                return transcript
            default:
                continue
            }
        }
    }

    static func auditEntries(_ daemon: DaemonProcess, user: String) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 50)) else { return [] }
        return entries
    }

    static func auditReasons(_ daemon: DaemonProcess, user: String) throws -> [String] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 50)) else { return [] }
        return entries.map { "\($0.outcome): \($0.reason ?? "")" }
    }

    @Test("a registered key logs in at the console; the same assertion again, or a counter going back, is a cloned key: refused and audited")
    func keyLogin() throws {
        let daemon = try Self.daemon()
        let key = try SoftKey()
        guard case .keys(let added) = try Self.register(key, user: "kira", on: daemon) else { throw HarnessError("not registered") }
        #expect(added.map(\.name) == ["key"] && added.first?.algorithm == "ES256")
        var seen: KeyRequest?
        let first = try Self.login("kira", on: daemon, key: { request in seen = request; return key.assert(request) })
        #expect(first.verdict == .success, "\(first.texts)")
        #expect(seen?.credentials == [key.credentialID] && seen?.rpID == Self.rpID && seen?.requireUserVerification == false)
        // A clone answers with the counter the original already used.
        let clone = try Self.login("kira", on: daemon, key: { key.assert($0, counter: 1) })
        #expect(clone.verdict == .failure, "\(clone.texts)")
        let back = try Self.login("kira", on: daemon, key: { key.assert($0, counter: 0) })
        #expect(back.verdict == .failure)
        let again = try Self.login("kira", on: daemon, key: { key.assert($0, counter: 7) })
        #expect(again.verdict == .success)
        let audit = try Self.auditReasons(daemon, user: "kira")
        #expect(audit.contains { $0.hasPrefix("success: security key 'key', counter 1") }, "\(audit)")
        #expect(audit.contains { $0.contains("cloned security key 'key'? counter 1 after 1") }, "\(audit)")
        #expect(audit.contains { $0.contains("cloned security key 'key'? counter 0 after 1") }, "\(audit)")
        #expect(daemon.log.contains("cloned key"))
    }

    @Test("assertions refused: another relying party, no touch, no verification when the policy asks, another key, a forged signature")
    func refusals() throws {
        let daemon = try Self.daemon(uv: true)
        let key = try SoftKey()
        try Self.register(key, user: "rita", on: daemon)
        let stranger = try SoftKey()
        let cases: [(String, (KeyRequest) -> KeyResponse)] = [
            ("made for another relying party", { key.assert($0, rpID: "pam://elsewhere.test", userVerified: true) }),
            ("not touched", { key.assert($0, userPresent: false, userVerified: true) }),
            ("user not verified", { key.assert($0) }),
            ("unknown credential", { stranger.assert($0, userVerified: true) }),
            ("signature does not verify", { request in
                var response = key.assert(request, userVerified: true)
                response.assertion?.signature = stranger.sign([1, 2, 3])
                return response
            }),
        ]
        for (reason, answer) in cases {
            let transcript = try Self.login("rita", on: daemon, key: answer)
            #expect(transcript.verdict == .failure, "\(reason): \(transcript.texts)")
            let audit = try Self.auditReasons(daemon, user: "rita")
            #expect(audit.last?.contains(reason) == true, "\(reason): \(audit)")
        }
        #expect(try daemon.status("rita").failures == cases.count)
        let verified = try Self.login("rita", on: daemon, key: { key.assert($0, userVerified: true) })
        let audit = try Self.auditReasons(daemon, user: "rita")
        #expect(verified.verdict == .success, "\(verified.texts) \(audit)")
    }

    @Test("no key plugged in: the user's app code works after the key step; with only a key the login ends, not counted as a failure")
    func fallback() throws {
        let daemon = try Self.daemon()
        let account = try daemon.provision("fred")
        let key = try SoftKey()
        try Self.register(key, user: "fred", on: daemon)
        let withCode = try Self.login("fred", on: daemon, key: nil, code: account.code())
        #expect(withCode.verdict == .success, "\(withCode.texts)")
        #expect(withCode.messages.contains(.errorMessage("No security key is plugged in.")))
        try Self.register(try SoftKey(), user: "olly", on: daemon)
        let onlyKey = try Self.login("olly", on: daemon, key: nil)
        #expect(onlyKey.verdict == .failure && onlyKey.messages.contains(.errorMessage("No security key is plugged in.")), "\(onlyKey.texts)")
        #expect(try daemon.status("olly").failures == 0)
        let audit = try Self.auditReasons(daemon, user: "olly")
        #expect(audit.last?.contains("no security key plugged in; no other factor allowed here") == true, "\(audit)")
    }

    @Test("a client that cannot talk to keys (sshd, an old module): the code prompt, or for a key-only user a denial that says why")
    func clientsWithoutKeys() throws {
        let daemon = try Self.daemon()
        let account = try daemon.provision("cleo")
        try Self.register(try SoftKey(), user: "cleo", on: daemon)
        for capabilities in [[], ClientCapabilities.binaryPayload] as [ClientCapabilities] {
            let transcript = try Self.login("cleo", on: daemon, capabilities: capabilities, service: "sshd", key: nil, code: account.code(offset: capabilities.isEmpty ? 0 : 1))
            #expect(transcript.verdict == .success, "\(transcript.texts)")
            #expect(!transcript.messages.contains { if case .promptEchoOff(_, _?) = $0 { true } else { false } })
        }
        try Self.register(try SoftKey(), user: "kai", on: daemon)
        let denied = try Self.login("kai", on: daemon, capabilities: [], service: "sshd", key: nil)
        #expect(denied.verdict == .denied && denied.texts.contains("cannot talk to security keys"), "\(denied.texts)")
    }

    @Test("a user without keys, whose only factor (HOTP) is not allowed here, is never told about security keys")
    func noKeysNoKeyText() throws {
        let daemon = try Self.daemon()
        _ = try daemon.provision("nell", parameters: OTPParameters(method: .hotp))
        guard case .policy(var policy) = try daemon.control(.policyShow) else { throw HarnessError("policy") }
        policy.serviceFactorKinds = ["sshd": ["totp", "recovery"]]
        #expect(try daemon.control(.policySet(policy)) == .ok)
        let transcript = try Self.login("nell", on: daemon, capabilities: [], service: "sshd", key: nil, code: "")
        #expect(!transcript.texts.contains("security key"), "\(transcript.texts)")
    }

    @Test("registration: one key per credential, a current code for a user's own key, the challenge single-use and on its connection only")
    func registration() throws {
        let daemon = try Self.daemon()
        let key = try SoftKey()
        try Self.register(key, user: "rosa", name: "blue", on: daemon)
        // The same key again (another name), or for another user: the credential is taken.
        #expect(try Self.register(key, user: "rosa", name: "again", on: daemon) == .error(code: .conflict, message: "this key is already registered, to this or another account"))
        if case .error(.conflict, _) = try Self.register(key, user: "rudi", on: daemon) {} else { Issue.record("one credential, two accounts") }
        if case .error(.conflict, _) = try Self.register(try SoftKey(), user: "rosa", name: "blue", on: daemon) {} else { Issue.record("a taken name") }
        // keyFinish on another connection than keyBegin, or twice.
        let first = try daemon.connect()
        defer { first.close() }
        let begun = try first.request(ControlRequest.keyBegin(user: "rosa", name: "green", code: nil), as: ControlResponse.self)
        guard case .keyChallenge(let challenge) = begun else {
            throw HarnessError("no challenge: \(begun)")
        }
        let other = try SoftKey()
        if case .error(.invalidRequest, _) = try daemon.control(.keyFinish(other.register(challenge))) {} else { Issue.record("another connection") }
        guard case .keys(let green) = try first.request(ControlRequest.keyFinish(other.register(challenge)), as: ControlResponse.self) else {
            throw HarnessError("the right connection's finish failed")
        }
        #expect(green.map(\.name) == ["green"])
        if case .error(.invalidRequest, _) = try first.request(ControlRequest.keyFinish(other.register(challenge)), as: ControlResponse.self) {} else {
            Issue.record("the challenge is single-use")
        }
        guard case .keys(let keys) = try daemon.control(.keyList(user: "rosa", all: false)) else { throw HarnessError("no list") }
        #expect(keys.map(\.name) == ["blue", "green"])
        #expect(try daemon.control(.keyRemove(user: "rosa", name: "blue", code: nil)) == .ok)
        guard case .keys(let after) = try daemon.control(.keyList(user: nil, all: true)) else { throw HarnessError("no list") }
        #expect(after.map(\.name) == ["green"])
    }

    @Test("--check-config refuses a stored policy that allows keys when fido2_rp_id is gone, and reports the rp id when set")
    func checkConfig() throws {
        let daemon = try Self.daemon()
        let ok = try ChildProcess.run([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(ok.status == 0 && ok.output.contains("security keys: relying-party id \(Self.rpID)"), "\(ok.output)")
        _ = daemon.stop()
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8).replacingOccurrences(of: "fido2_rp_id = \(Self.rpID)", with: "")
        try config.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let refused = try ChildProcess.run([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(refused.status != 0 && refused.output.contains("stored policy allows the factor kind fido2, but fido2_rp_id is not set"), "\(refused.output)")
    }

    @Test("without fido2_rp_id: no key step, no registration, and a policy allowing keys is refused")
    func withoutRelyingParty() throws {
        let daemon = try DaemonProcess()
        let policy = PolicyDocument(factorKinds: ["totp", "hotp", "recovery", "fido2"])
        if case .error(.invalidRequest, let message) = try daemon.control(.policySet(policy)) {
            #expect(message.contains("fido2_rp_id"))
        } else { Issue.record("policy allowing keys without an rp id") }
        if case .error(.unavailable, let message) = try daemon.control(.keyBegin(user: "nina", name: nil, code: nil)) {
            #expect(message.contains("fido2_rp_id"))
        } else { Issue.record("registration without an rp id") }
    }
}
