import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// The key step end to end: pam_twofold.so through real libpam (pam_driver), the real daemon, the
/// real libfido2 under the module with the fake key (FakeFidoKey), the key registered through the
/// module's libfido2 layer (pam/tests/fido_layer, as `twofoldctl key add` runs it).
@Suite("PAM module, daemon and libfido2 with the fake key", .enabled(if: PAMBuild.fido2))
struct ModuleKeyLoginTests {
    static let touch = "INFO Touch your security key."

    /// A fresh fake key; the caller removes it.
    static func freshKey() throws -> FakeFidoKey {
        try PAMBuild.require()
        try FakeFidoKey.build()
        return try FakeFidoKey()
    }

    /// keyBegin, the layer's makeCredential on the fake key, keyFinish: one connection, as root.
    @discardableResult
    static func register(_ key: FakeFidoKey, user: String, on daemon: DaemonProcess, environment: [String: String] = [:]) throws -> ControlResponse {
        let connection = try daemon.connect()
        defer { connection.close() }
        let begun = try connection.request(ControlRequest.keyBegin(user: user, name: "fake", code: nil), as: ControlResponse.self)
        guard case .keyChallenge(let c) = begun else { return begun }
        func hex(_ base64: String) -> String { (Data(base64Encoded: base64) ?? Data()).map { String(format: "%02x", $0) }.joined() }
        let argv = [PAMBuild.directory + "/tests/fido_layer", "register", c.rpID, hex(c.userID), c.userName, hex(c.challenge),
                    c.userVerification ? "1" : "0", "\(c.timeoutMillis)"] + c.exclude.map(hex)
        let (_, output) = try run(argv, environment: key.environment(environment))
        var out: [String: String] = [:]
        for line in output.split(separator: "\n") {
            if let eq = line.firstIndex(of: "=") { out[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
        }
        guard out["status"] == "0", let fmt = out["fmt"], let authData = out["auth_data"], let sig = out["sig"] else {
            throw HarnessError("makeCredential on the fake key: \(output)")
        }
        func base64(_ hex: String) -> String {
            var bytes: [UInt8] = []
            var i = hex.startIndex
            while let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex), j > i, let v = UInt8(hex[i..<j], radix: 16) { bytes.append(v); i = j }
            return Data(bytes).base64EncodedString()
        }
        let x5c = out["x5c"] ?? ""
        let registration = KeyRegistration(format: fmt, authData: base64(authData), signature: base64(sig),
                                           certificates: x5c.isEmpty ? [] : [base64(x5c)])
        return try connection.request(ControlRequest.keyFinish(registration), as: ControlResponse.self)
    }

    @Test("a key registered through the layer logs in through the module: touch text, no code; a clone is refused")
    func login() throws {
        let daemon = try KeyLoginTests.daemon()
        let key = try Self.freshKey()
        defer { key.remove() }
        guard case .keys(let added) = try Self.register(key, user: "kim", on: daemon) else { throw HarnessError("not registered") }
        #expect(added.map(\.algorithm) == ["ES256"])
        let pam = try PAMConfig(socket: daemon.socketPath)
        let first = try pam.authenticate("kim", answers: [], environment: key.environment())
        #expect(first.result == "PAM_SUCCESS", "\(first.lines)")
        #expect(first.lines.contains(Self.touch) && !first.lines.contains { $0.hasPrefix("ECHO_OFF") }, "\(first.lines)")
        #expect(key.log().filter { $0.hasPrefix("getAssertion") } == ["getAssertion up=0 uv=0", "getAssertion up=1 uv=0"], "\(key.log())")
        // FIDO_DEBUG is the calling user's under su or sudo: libfido2's trace of the key's traffic stays off.
        let traced = try pam.authenticate("kim", answers: [], environment: key.environment(["FIDO_DEBUG": "1"]))
        #expect(traced.result == "PAM_SUCCESS" && !traced.lines.contains { $0.contains("fido_") }, "\(traced.lines)")
        // A key whose counter goes back: a clone, refused.
        let clone = try pam.authenticate("kim", answers: [], environment: key.environment(["TWOFOLD_FAKE_FIDO_COUNTER": "backwards"]))
        #expect(clone.result == "PAM_AUTH_ERR", "\(clone.lines)")
        #expect(try KeyLoginTests.auditReasons(daemon, user: "kim").contains { $0.contains("cloned security key 'fake'?") })
    }

    @Test("no key plugged in: the module says so, the daemon falls back to the app code")
    func noKey() throws {
        let daemon = try KeyLoginTests.daemon()
        let account = try daemon.provision("kit")
        let key = try Self.freshKey()
        defer { key.remove() }
        try Self.register(key, user: "kit", on: daemon)
        let pam = try PAMConfig(socket: daemon.socketPath)
        let outcome = try pam.authenticate("kit", answers: [account.code()], environment: key.environment(["TWOFOLD_FAKE_FIDO": "absent"]))
        #expect(outcome.result == "PAM_SUCCESS", "\(outcome.lines)")
        #expect(outcome.lines.contains("ERROR No security key is plugged in.") && !outcome.lines.contains(Self.touch), "\(outcome.lines)")
    }

    @Test("user verification with the key's PIN: asked by the module with the daemon's prompt, the UV flag checked")
    func pin() throws {
        let daemon = try KeyLoginTests.daemon(uv: true)
        let key = try Self.freshKey()
        defer { key.remove() }
        let knobs = ["TWOFOLD_FAKE_FIDO_UV": "pin"]
        try Self.register(key, user: "kai", on: daemon, environment: knobs.merging(["TWOFOLD_TEST_PIN": "123456"]) { $1 })
        let pam = try PAMConfig(socket: daemon.socketPath)
        let outcome = try pam.authenticate("kai", answers: ["123456"], environment: key.environment(knobs))
        #expect(outcome.result == "PAM_SUCCESS", "\(outcome.lines)")
        #expect(outcome.lines.contains("ECHO_OFF PIN for your security key: "), "\(outcome.lines)")
        let wrong = try pam.authenticate("kai", answers: ["000000"], environment: key.environment(knobs))
        #expect(wrong.result == "PAM_AUTH_ERR", "\(wrong.lines)")
        #expect(!daemon.log.contains("123456") && !daemon.log.contains("000000"), "a PIN reached the daemon's log")
    }

    @Test("one key at the console, su, sudo, and a screen locker that runs as the user itself")
    func services() throws {
        let daemon = try KeyLoginTests.daemon()
        let user = try TestUser.user
        let key = try Self.freshKey()
        defer { key.remove() }
        try Self.register(key, user: user.name, on: daemon)
        // The locker's process is the user's: it must reach the key's state as the user.
        _ = try ChildProcess.run(["/bin/chmod", "-R", "a+rwX", key.directory])
        for (service, account) in [("login", nil), ("su", nil), ("sudo", nil), ("xscreensaver", user)] as [(String, TestUser?)] {
            let pam = try PAMConfig(socket: daemon.socketPath, service: service)
            let outcome = try pam.authenticate(user.name, answers: [], as: account, environment: key.environment())
            #expect(outcome.result == "PAM_SUCCESS", "\(service): \(outcome.lines)")
            #expect(outcome.lines.contains(Self.touch), "\(service): \(outcome.lines)")
        }
        let services = try KeyLoginTests.auditEntries(daemon, user: user.name).filter { $0.outcome == "success" && $0.action == "verify" }.compactMap(\.service)
        #expect(Set(services) == ["login", "su", "sudo", "xscreensaver"], "\(services)")
    }

    @Test("what the fake key can get wrong, through the module: no touch, another relying party, an unknown credential, a key that never answers")
    func keyFaults() throws {
        let daemon = try KeyLoginTests.daemon(extraConfig: "fido2_timeout = 5")
        let account = try daemon.provision("kaj")
        let key = try Self.freshKey()
        defer { key.remove() }
        try Self.register(key, user: "kaj", on: daemon)
        let pam = try PAMConfig(socket: daemon.socketPath, options: "timeout=20")
        // Checked by the daemon: refused and counted, no fallback (the key did answer).
        for (knobs, reason) in [(["TWOFOLD_FAKE_FIDO_UP": "0"], "not touched"), (["TWOFOLD_FAKE_FIDO_RPID": "wrong"], "another relying party")] {
            let outcome = try pam.authenticate("kaj", answers: [], environment: key.environment(knobs))
            #expect(outcome.result == "PAM_AUTH_ERR", "\(reason): \(outcome.lines)")
            #expect(try KeyLoginTests.auditReasons(daemon, user: "kaj").last?.contains(reason) == true, "\(reason)")
        }
        // The module could not use the key: it says why and the daemon falls back to the app code.
        let other = try FakeFidoKey()
        defer { other.remove() }
        let cases: [([String: String], String, FakeFidoKey)] = [
            ([:], "The security key plugged in is not registered for this account.", other),
            (["TWOFOLD_FAKE_FIDO": "hang"], "The security key was not touched in time.", key),
        ]
        for (index, (knobs, text, which)) in cases.enumerated() {
            let outcome = try pam.authenticate("kaj", answers: [account.code(offset: index)], environment: which.environment(knobs))
            #expect(outcome.result == "PAM_SUCCESS", "\(text): \(outcome.lines)")
            #expect(outcome.lines.contains("ERROR " + text), "\(outcome.lines)")
        }
    }

    @Test("nofido2 (sshd): no key step, libfido2 never loaded, the code prompt at once")
    func nofido2() throws {
        let daemon = try KeyLoginTests.daemon()
        let account = try daemon.provision("kip")
        let key = try Self.freshKey()
        defer { key.remove() }
        try Self.register(key, user: "kip", on: daemon)
        let before = key.log().count
        let pam = try PAMConfig(socket: daemon.socketPath, options: "nofido2")
        let outcome = try pam.authenticate("kip", answers: [account.code()], environment: key.environment())
        #expect(outcome.result == "PAM_SUCCESS", "\(outcome.lines)")
        #expect(outcome.lines.contains { $0.hasPrefix("ECHO_OFF") } && !outcome.lines.contains(Self.touch), "\(outcome.lines)")
        #expect(key.log().count == before, "the key was asked: \(key.log())")
    }
}
