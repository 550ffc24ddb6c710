import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Security keys through twofoldctl against a real twofoldd: the policy's key fields stored, the key
/// commands without a key, doctor's section from the daemon's ServerInfo.fido2.
@Suite struct KeyDaemonTests {
    static let aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8"

    @Test("policy set stores the key fields; policy show shows them; --no-fido2-aaguids empties the list")
    func policyKeyFieldsRoundTrip() throws {
        let daemon = try DaemonProcess()
        let set = try daemon.ctl(["policy", "set", "--fido2-user-verification", "on", "--fido2-aaguid", Self.aaguid.uppercased()])
        #expect(set.status == 0, "\(set)\n\(daemon.log)")
        #expect(set.stdout.contains("Key verification: required (the key's PIN or built-in biometrics)\nKey models:       \(Self.aaguid)\n"), "\(set)")
        let stored = try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self)
        #expect(stored.fido2UserVerification && stored.fido2AAGUIDs == [Self.aaguid])

        #expect(try daemon.ctl(["policy", "set", "--no-fido2-aaguids", "--fido2-user-verification", "off"]).status == 0)
        let cleared = try daemon.ctl(["policy", "show", "--json"]).json(PolicyDocument.self)
        #expect(!cleared.fido2UserVerification && cleared.fido2AAGUIDs.isEmpty)
    }

    @Test("key list and key remove of a user without keys: an empty list; not found (exit 1), asking no code")
    func keyCommandsWithoutKeys() throws {
        let daemon = try DaemonProcess()
        let list = try daemon.ctl(["key", "list", "--user", "alice"])
        #expect(list.status == 0 && list.stdout == "No security keys for alice.\n", "\(list)")
        #expect(try daemon.ctl(["key", "list", "--all", "--json"]).json([KeyInfo].self).isEmpty)
        let removed = try daemon.ctl(["key", "remove", "blue", "--user", "alice", "--json"])
        #expect(removed.status == 1, "\(removed)")
        #expect(removed.stderr.contains("alice has no security key 'blue'"), "\(removed)")
        #expect(removed.stdout.contains("\"code\" : \"notFound\""), "\(removed)")
        // An ordinary user may not see another's keys (exit 4).
        let other = try daemon.ctlAsTestUser(["key", "list", "--user", "root"])
        #expect(other.status == 4, "\(other)")
    }
}

/// doctor's Security keys (FIDO2) section from a real daemon.
@Suite struct DoctorFido2Tests {
    @Test("off without an rp id; with one: ok, then the policy's verification and models; an rp id gone while the policy allows keys: a warning, said once")
    func daemonSetup() throws {
        let off = try DoctorFixture()
        let (_, report) = try off.report()
        #expect(report.named("fido2.rp-id").map(\.severity) == ["ok"] && report.named("fido2.rp-id")[0].message.hasPrefix("not set"), "\(report)")
        #expect(report.named("fido2.policy").map(\.severity) == ["ok"], "\(report)")

        let fixture = try DoctorFixture(extraConfig: "fido2_rp_id = pam://twofold.test")
        #expect(try fixture.daemon.ctl(["policy", "set", "--factor-kinds", "totp,recovery,fido2", "--fido2-user-verification", "on", "--yes"]).status == 0)
        let (_, on) = try fixture.report()
        #expect(on.named("fido2.rp-id").first?.message.hasPrefix("pam://twofold.test") == true, "\(on)")
        #expect(on.named("fido2.policy").first?.message.contains("user verification required") == true, "\(on)")
        #expect(on.named("fido2.models").first?.message.contains("any key model") == true, "\(on)")
        #expect(on.problems.filter { $0.check.hasPrefix("fido2.") }.isEmpty, "\(on)")

        // A model list without a CA file: one warning (twofoldd's own problem is the same one).
        #expect(try fixture.daemon.ctl(["policy", "set", "--fido2-aaguid", KeyDaemonTests.aaguid, "--yes"]).status == 0)
        let (_, models) = try fixture.report()
        #expect(models.has("fido2.models", "warning") && models.named("fido2.problem").isEmpty, "\(models)")

        // The rp id removed from the file while the policy still allows keys.
        let config = try String(contentsOfFile: fixture.daemon.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "fido2_rp_id = pam://twofold.test", with: "")
            .write(toFile: fixture.daemon.configPath, atomically: true, encoding: .utf8)
        _ = try fixture.daemon.reload()
        let (_, gone) = try fixture.report()
        #expect(gone.has("fido2.rp-id", "warning"), "\(gone)")
        #expect(!gone.named("fido2.problem").contains { $0.message.contains("fido2_rp_id") }, "\(gone)")

        let (text, _) = try fixture.doctor(json: false)
        #expect(text.stdout.contains("\nSecurity keys (FIDO2)\n"), "\(text.stdout)")
    }
}
