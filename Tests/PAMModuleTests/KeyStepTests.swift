// The module's key step (docs/protocol.md, "The key step") against fake daemons: what it declares,
// how it refuses malformed key requests, and what it answers with the fake key (FakeFidoKey:
// pam/tests/fake_fido.so under the real libfido2) absent, present, with a PIN, or failing. Also
// the C tests of the key request parser (pam/tests/wire_test) and the libfido2 layer's
// registration (pam/tests/fido_layer, as twofoldctl uses it).

import Foundation
import Testing
import TwofoldCrypto
import TwofoldTestSupport

/// A key request as the daemon sends it in a PROMPT_ECHO_OFF's PAYLOAD; every field can be spoiled.
struct KeyRequest {
    var magic: UInt8 = 0x4B, version: UInt8 = 1, flags: UInt8 = 0x02, timeoutMillis: UInt32 = 5_000
    var rpID = "pam://twofold.test"
    var hash = [UInt8](repeating: 0xCD, count: 32)
    var credentials: [[UInt8]] = [[UInt8](repeating: 0x11, count: 48)]
    var pinPrompt = "Security key PIN: "
    var trailing: [UInt8] = []

    var bytes: [UInt8] {
        var out = [magic, version, flags] + be32(timeoutMillis) + [UInt8(rpID.utf8.count)] + Array(rpID.utf8) + hash
        out.append(UInt8(credentials.count))
        for id in credentials { out += [UInt8(id.count >> 8), UInt8(id.count & 0xFF)] + id }
        return out + [UInt8(pinPrompt.utf8.count)] + Array(pinPrompt.utf8) + trailing
    }

    /// The PROMPT_ECHO_OFF that carries it.
    func prompt(text: String = "Touch your security key.") -> [UInt8] {
        frame(MsgType.promptEchoOff, field(Tag.text, text) + field(Tag.payload, bytes))
    }
}

/// A key response as the module sends it.
struct KeyResponse: Equatable, CustomStringConvertible {
    var status: UInt8, fidoError: Int32
    var credentialID: [UInt8] = [], authData: [UInt8] = [], signature: [UInt8] = []

    init(status: UInt8, fidoError: Int32 = 0) { self.status = status; self.fidoError = fidoError }

    /// Parses strictly; nil when the module sent something the daemon would refuse.
    init?(_ b: [UInt8]) {
        guard b.count >= 7, b[0] == 0x6B, b[1] == 1 else { return nil }
        status = b[2]
        fidoError = Int32(bitPattern: UInt32(b[3]) << 24 | UInt32(b[4]) << 16 | UInt32(b[5]) << 8 | UInt32(b[6]))
        if status != 0 {
            guard b.count == 7 else { return nil }
            return
        }
        var pos = 7
        func take() -> [UInt8]? {
            guard b.count - pos >= 2 else { return nil }
            let n = Int(b[pos]) << 8 | Int(b[pos + 1])
            guard b.count - pos - 2 >= n else { return nil }
            defer { pos += 2 + n }
            return Array(b[pos + 2 ..< pos + 2 + n])
        }
        guard let id = take(), let ad = take(), let sig = take(), pos == b.count,
              (1...1023).contains(id.count), (37...1024).contains(ad.count), (1...512).contains(sig.count) else { return nil }
        credentialID = id
        authData = ad
        signature = sig
    }

    var description: String { "status \(status) fido_error \(fidoError) id \(credentialID.count) B authData \(authData.count) B sig \(signature.count) B" }
}

/// Runs pam/tests/fido_layer; returns its key=value lines (and "stderr" for its callbacks' lines).
func fidoLayer(_ args: [String], environment: [String: String]) throws -> [String: String] {
    try PAMBuild.require()
    let (_, output) = try ChildProcess.run([PAMBuild.directory + "/tests/fido_layer"] + args,
                                           environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
    var out: [String: String] = ["output": output]
    for line in output.split(separator: "\n") {
        if let eq = line.firstIndex(of: "=") { out[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
    }
    return out
}

func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

func unhex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex, let j = s.index(i, offsetBy: 2, limitedBy: s.endIndex), let v = UInt8(s[i..<j], radix: 16) {
        out.append(v)
        i = j
    }
    return out
}

/// The credential id inside a registration's authenticator data (attested credential data).
func credentialID(fromAuthData ad: [UInt8]) -> [UInt8]? {
    guard ad.count > 55 else { return nil }
    let n = Int(ad[53]) << 8 | Int(ad[54])
    guard ad.count >= 55 + n else { return nil }
    return Array(ad[55 ..< 55 + n])
}

@Suite("PAM module: the key step")
struct KeyStepTests {

    @Test("The C tests of the key request parser and response builder, and the fuzz inputs of the module's parser and dialog loop replayed (make -C pam check)")
    func wireParser() throws {
        let (status, output) = try PAMBuild.make("check")
        #expect(status == 0 && output.contains("wire_test: OK"), "\(output)")
        #expect(output.contains("fuzz_replay_wire: ") && output.contains("fuzz_replay_module: "), "\(output)")
    }

    @Test("nofido2: AUTH_START declares nothing, and a text dialog runs as before")
    func nofido2() throws {
        let run = try dialog(options: "nofido2", stdin: answers("123456")) { conn, fake in
            fake.expectAuthStart(conn, capabilities: 0)
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(fake.expectAnswer(conn) == "123456", "wrong answer")
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    static let malformed: [(String, [UInt8])] = {
        var cases: [(String, [UInt8])] = [("three bytes", [0, 1, 2]), ("empty", [])]
        var r = KeyRequest(); r.magic = 0x6B; cases.append(("the response's magic", r.bytes))
        r = KeyRequest(); r.version = 2; cases.append(("version 2", r.bytes))
        r = KeyRequest(); r.flags = 0x01; cases.append(("user presence unset", r.bytes))
        r = KeyRequest(); r.flags = 0x0A; cases.append(("an unknown flag", r.bytes))
        r = KeyRequest(); r.timeoutMillis = 999; cases.append(("timeout 999 ms", r.bytes))
        r = KeyRequest(); r.timeoutMillis = 120_001; cases.append(("timeout 120,001 ms", r.bytes))
        r = KeyRequest(); r.rpID = ""; cases.append(("an empty rp id", r.bytes))
        r = KeyRequest(); r.credentials = []; cases.append(("no credential", r.bytes))
        r = KeyRequest(); r.credentials = Array(repeating: [1], count: 17); cases.append(("17 credentials", r.bytes))
        r = KeyRequest(); r.credentials = [[]]; cases.append(("an empty credential id", r.bytes))
        r = KeyRequest(); r.trailing = [0]; cases.append(("a trailing byte", r.bytes))
        let good = KeyRequest().bytes
        cases.append(("truncated inside the hash", Array(good.prefix(30))))
        cases.append(("truncated before the pin prompt", Array(good.dropLast(KeyRequest().pinPrompt.utf8.count + 1))))
        return cases
    }()

    @Test("A malformed key request → PAM_AUTH_ERR, even with failmode=open, and no answer",
          .enabled(if: PAMBuild.fido2), arguments: malformed.indices)
    func malformedKeyRequest(_ index: Int) throws {
        let (name, payload) = Self.malformed[index]
        let run = try dialog(options: "failmode=open") { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(frame(MsgType.promptEchoOff, field(Tag.text, "Touch your security key.") + field(Tag.payload, payload)))
            fake.expect(conn.closedWithoutData(), "the module answered a malformed key request (\(name))")
        }
        #expect(run.result == "7 PAM_AUTH_ERR", "\(name): \(run)")
        #expect(run.dialog.isEmpty, "\(name): \(run)")
        #expect(run.stderr.contains("malformed key request: key request: "), "\(name): \(run)")
    }

    @Test("A PAYLOAD in a PROMPT_ECHO_ON → PAM_AUTH_ERR (the key step uses ECHO_OFF only)", .enabled(if: PAMBuild.fido2))
    func payloadInEchoOn() throws {
        let run = try dialog(options: "failmode=open") { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(frame(MsgType.promptEchoOn, field(Tag.text, "Key: ") + field(Tag.payload, KeyRequest().bytes)))
            fake.expect(conn.closedWithoutData(), "the module answered")
        }
        #expect(run.result == "7 PAM_AUTH_ERR" && run.stderr.contains("does not list"), "\(run)")
    }

    /// No key: NO_DEVICE, no "touch" text shown, a log line; the daemon then falls back to a code.
    @Test("No key present → the key response says NO_DEVICE, the daemon's fallback prompt follows", .enabled(if: PAMBuild.fido2))
    func noKey() throws {
        try FakeFidoKey.build()
        let key = try FakeFidoKey()
        defer { key.remove() }
        let run = try dialog(stdin: answers("123456"), environment: key.environment(["TWOFOLD_FAKE_FIDO": "absent"])) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(KeyRequest().prompt())
            let response = fake.expectKeyAnswer(conn).flatMap(KeyResponse.init)
            fake.expect(response == KeyResponse(status: 2), "key response \(String(describing: response))")
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(fake.expectAnswer(conn) == "123456", "wrong answer")
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
        #expect(run.dialog == ["ECHO_OFF Code: "], "the touch text is shown only when a key will wait: \(run)")
        #expect(run.stderr.contains("no security key found"), "\(run)")
        #expect(key.log() == ["dlopen libfido2.so.1", "manifest"], "libfido2 was asked for keys once: \(key.log())")
    }
}

/// With the fake key: the real libfido2 under the module and under the layer.
@Suite("PAM module and libfido2 layer: the key step with the fake key", .enabled(if: PAMBuild.fido2))
struct KeyStepWithFakeKeyTests {
    static let rpID = "pam://twofold.test"
    static let userID = "0102030405060708"
    static let hash = [UInt8](repeating: 0xCD, count: 32)

    /// Registers a credential on the fake key (through the layer); returns its id.
    static func register(_ env: [String: String], uv: Bool = false, exclude: [[UInt8]] = []) throws -> [String: String] {
        try fidoLayer(["register", rpID, userID, "alice", hex(hash), uv ? "1" : "0", "10000"] + exclude.map(hex), environment: env)
    }

    /// A fresh fake key (built first); the caller removes it.
    static func freshKey() throws -> FakeFidoKey {
        try FakeFidoKey.build()
        return try FakeFidoKey()
    }

    static func registeredID(_ env: [String: String]) throws -> [UInt8] {
        let out = try register(env)
        guard out["status"] == "0", let ad = out["auth_data"], let id = credentialID(fromAuthData: unhex(ad)) else {
            throw HarnessError("registration on the fake key failed: \(out["output"] ?? "")")
        }
        return id
    }

    /// One key step through the module; returns the key response and the run.
    static func keyStep(_ request: KeyRequest, env: [String: String], stdin: [UInt8]? = nil) throws -> (KeyResponse?, DriverRun) {
        let box = ResponseBox()
        let run = try dialog(stdin: stdin, environment: env) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(request.prompt())
            box.set(fake.expectKeyAnswer(conn).flatMap(KeyResponse.init))
            conn.send(verdictFrame(Verdict.success))
        }
        return (box.get(), run)
    }

    @Test("A registered key: silent probe, touch text, assertion over the challenge for the rp id, relayed as is")
    func assertion() throws {
        let key = try Self.freshKey()
        defer { key.remove() }
        let env = key.environment()
        let id = try Self.registeredID(env)
        var request = KeyRequest()
        request.credentials = [[UInt8](repeating: 0x77, count: 48), id]
        let (response, run) = try Self.keyStep(request, env: env)
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
        #expect(run.dialog == ["INFO Touch your security key."], "\(run)")
        guard let response else { Issue.record("no key response: \(run)"); return }
        #expect(response.status == 0 && response.fidoError == 0 && response.credentialID == id, "\(response)")
        #expect(Array(response.authData.prefix(32)) == Crypto.sha256(Array(Self.rpID.utf8)), "rpIdHash")
        #expect(response.authData[32] & 0x01 == 0x01 && response.authData[32] & 0x04 == 0, "flags \(response.authData[32])")
        // Asked silently first (no blink), then with user presence.
        let asked = key.log().filter { $0.hasPrefix("getAssertion") }
        #expect(asked == ["getAssertion up=0 uv=0", "getAssertion up=1 uv=0"], "\(key.log())")
    }

    @Test("User verification with a PIN: asked with the daemon's prompt before the touch, never logged")
    func pin() throws {
        let key = try Self.freshKey()
        defer { key.remove() }
        let env = key.environment(["TWOFOLD_FAKE_FIDO_UV": "pin"])
        let id = try Self.registeredID(env.merging(["TWOFOLD_TEST_PIN": "123456"]) { $1 })
        var request = KeyRequest()
        request.flags = 0x03
        request.credentials = [id]
        request.pinPrompt = "PIN of alice's key: "
        let (response, run) = try Self.keyStep(request, env: env, stdin: answers("123456"))
        #expect(run.dialog == ["ECHO_OFF PIN of alice's key: ", "INFO Touch your security key."], "\(run)")
        #expect(response?.status == 0 && (response?.authData[32] ?? 0) & 0x05 == 0x05, "\(String(describing: response))")
        #expect(!run.stderr.contains("123456"), "the PIN reached a log: \(run)")

        let (wrong, wrongRun) = try Self.keyStep(request, env: env, stdin: answers("654321"))
        #expect(wrong?.status == 6, "wrong PIN: \(String(describing: wrong))")
        #expect(wrongRun.stderr.contains("wrong security key PIN") && !wrongRun.stderr.contains("654321"), "\(wrongRun)")
    }

    @Test("User verification with built-in UV: no PIN asked, the UV flag set")
    func builtinUV() throws {
        let key = try Self.freshKey()
        defer { key.remove() }
        let env = key.environment()
        var request = KeyRequest()
        request.flags = 0x03
        request.credentials = [try Self.registeredID(env)]
        let (response, run) = try Self.keyStep(request, env: env)
        #expect(run.dialog == ["INFO Touch your security key."], "\(run)")
        #expect(response?.status == 0 && (response?.authData[32] ?? 0) & 0x05 == 0x05, "\(String(describing: response))")
    }

    struct Failure: Sendable, CustomTestStringConvertible {
        let name: String, knobs: [String: String], flags: UInt8, registered: Bool, status: UInt8, log: String
        var testDescription: String { name }
    }

    static let failures: [Failure] = [
        Failure(name: "an unknown credential", knobs: [:], flags: 0x02, registered: false, status: 3,
                log: "no security key present holds a registered credential"),
        Failure(name: "libfido2 missing", knobs: ["TWOFOLD_FAKE_FIDO": "nolib"], flags: 0x02, registered: true, status: 1,
                log: "install libfido2-1"),
        Failure(name: "a key that never answers", knobs: ["TWOFOLD_FAKE_FIDO": "hang"], flags: 0x02, registered: true, status: 4,
                log: "not touched in time or did not answer"),
        Failure(name: "UV asked of a key with neither UV nor PIN", knobs: ["TWOFOLD_FAKE_FIDO_UV": "none"], flags: 0x03,
                registered: true, status: 8, log: "can verify neither"),
    ]

    @Test("A key step that gives no assertion: the status goes to the daemon, the reason to the log, no touch text",
          arguments: failures)
    func failure(_ c: Failure) throws {
        let key = try Self.freshKey()
        defer { key.remove() }
        let base = key.environment()
        var request = KeyRequest()
        request.flags = c.flags
        request.timeoutMillis = 1_000
        if c.registered { request.credentials = [try Self.registeredID(base)] }
        let (response, run) = try Self.keyStep(request, env: base.merging(c.knobs) { $1 })
        #expect(response?.status == c.status, "\(String(describing: response)) \(run)")
        #expect(run.dialog.isEmpty, "\(run)")
        #expect(run.stderr.contains(c.log), "\(run)")
    }

    @Test("The layer registers: packed attestation, ES256 (or EdDSA), the exclude list, the certificate")
    func registration() throws {
        let fakeKey = try Self.freshKey()
        defer { fakeKey.remove() }
        let env = fakeKey.environment(), dir = fakeKey.directory
        let first = try Self.register(env)
        #expect(first["status"] == "0" && first["fmt"] == "packed" && first["x5c"] == "", "\(first)")
        let ad = unhex(first["auth_data"] ?? "")
        #expect(Array(ad.prefix(32)) == Crypto.sha256(Array(Self.rpID.utf8)) && ad.count > 55 && ad[32] & 0x41 == 0x41, "\(first)")
        let id = try #require(credentialID(fromAuthData: ad))
        #expect(try Self.register(env, exclude: [id])["status"] == "9", "the exclude list")
        let eddsa = try Self.register(env.merging(["TWOFOLD_FAKE_FIDO_ALG": "eddsa"]) { $1 })
        #expect(eddsa["status"] == "0" && (eddsa["auth_data"] ?? "").contains("a401010327200621"), "an OKP Ed25519 key: \(eddsa)")
        let none = try Self.register(env.merging(["TWOFOLD_FAKE_FIDO_UV": "none"]) { $1 }, uv: true)
        #expect(none["status"] == "8", "\(none)")
        let pin = try Self.register(env.merging(["TWOFOLD_FAKE_FIDO_UV": "pin", "TWOFOLD_TEST_PIN": "123456"]) { $1 })
        #expect(pin["status"] == "0" && (pin["output"] ?? "").contains("pin\n"), "a key with a PIN set asks it even without UV: \(pin)")
        // Full attestation: the certificate comes back as x5c.
        let key = dir + "/att.pem", cert = dir + "/att.der"
        _ = try ChildProcess.run(["/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        _ = try ChildProcess.run(["/usr/bin/openssl", "req", "-new", "-x509", "-key", key, "-subj", "/CN=Fake/OU=Authenticator Attestation/O=Twofold/C=US",
                                  "-days", "30", "-outform", "DER", "-out", cert])
        let attested = try Self.register(env.merging(["TWOFOLD_FAKE_FIDO_ATTESTATION": key + ":" + cert]) { $1 })
        let der = try Data(contentsOf: URL(fileURLWithPath: cert))
        #expect(attested["status"] == "0" && attested["x5c"] == hex(Array(der)), "\(attested)")
    }
}

/// Carries the key response out of the fake daemon's script (another thread).
final class ResponseBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: KeyResponse?
    func set(_ v: KeyResponse?) { lock.lock(); value = v; lock.unlock() }
    func get() -> KeyResponse? { lock.lock(); defer { lock.unlock() }; return value }
}
