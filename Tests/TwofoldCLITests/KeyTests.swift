import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// twofoldctl's side of security keys (FIDO2): the policy's key fields and doctor's local checks,
/// against a real twofoldd.
@Suite struct KeyPolicyTests {
    struct DryRun: Decodable {
        struct Change: Decodable { var field: String; var from: String; var to: String }
        var dryRun: Bool
        var changes: [Change]
        var policy: PolicyDocument
    }

    @Test("policy set --dry-run: the key fields as the CLI sends them (AAGUIDs in lower case, once each)")
    func dryRunShowsTheKeyFields() throws {
        let daemon = try DaemonProcess()
        let aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
        let result = try daemon.ctl(["policy", "set", "--fido2-user-verification", "on", "--fido2-aaguid", aaguid.uppercased(),
                                     "--fido2-aaguid", aaguid, "--fido2-aaguid", "00000000-0000-0000-0000-000000000001", "--dry-run", "--json"])
        #expect(result.status == 0, "\(result)")
        let dry = try result.json(DryRun.self)
        #expect(dry.policy.fido2UserVerification)
        #expect(dry.policy.fido2AAGUIDs == [aaguid, "00000000-0000-0000-0000-000000000001"])
        let changes = Dictionary(uniqueKeysWithValues: dry.changes.map { ($0.field, $0.to) })
        #expect(changes["Key verification"] == "required (the key's PIN or built-in biometrics)", "\(dry.changes)")
        #expect(changes["Key models"] == "\(aaguid),00000000-0000-0000-0000-000000000001", "\(dry.changes)")

        let human = try daemon.ctl(["policy", "set", "--factor-kinds", "totp,recovery,fido2", "--dry-run"])
        #expect(human.status == 0, "\(human)")
        #expect(human.stdout.contains("Factor kinds: totp,hotp,recovery -> totp,recovery,fido2"), "\(human)")
        let shown = try daemon.ctl(["policy", "show"])
        #expect(shown.stdout.contains("Key verification: not required (a touch)\nKey models:       (any)\n"), "\(shown)")
    }
}

/// doctor's Security keys (FIDO2) section: the checks of this host.
@Suite struct DoctorFido2LocalTests {
    @Test("the built module holds libfido2.so.1 and libfido2 loads: both ok; a module built without is noted, not a problem while no policy allows keys")
    func moduleAndLibrary() throws {
        let fixture = try DoctorFixture()
        let (_, report) = try fixture.report()
        let module = try #require(report.named("fido2.module").first, "\(report)")
        #expect(module.severity == "ok" && module.message.hasPrefix("built with FIDO2"), "\(report)")
        #expect(module.subject == fixture.moduleDir + "/pam_twofold.so")
        #expect(report.named("fido2.library").map(\.severity) == ["ok"], "\(report)")
        #expect(report.named("fido2.library").first?.message == "loads", "\(report)")

        // A module without the key step (here: pam_permit.so under the module's name).
        unlink(fixture.moduleDir + "/pam_twofold.so")
        try FileManager.default.copyItem(atPath: DoctorFixture.systemModuleDir + "/pam_permit.so", toPath: fixture.moduleDir + "/pam_twofold.so")
        let (_, without) = try fixture.report()
        let noted = try #require(without.named("fido2.module").first, "\(without)")
        #expect(noted.severity == "ok" && noted.message.hasPrefix("built without FIDO2"), "\(without)")

        let (text, _) = try fixture.doctor(json: false)
        #expect(text.stdout.contains("\nSecurity keys (FIDO2)\n  ok  "), "\(text.stdout)")
    }
}
