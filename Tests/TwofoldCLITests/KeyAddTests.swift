import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `twofoldctl key add` end to end: the real twofoldctl, its libfido2 layer and the real libfido2,
/// with the test suite's software key (pam/tests/fake_fido.so, LD_PRELOAD) plugged in, against a
/// real twofoldd with an rp id.
@Suite struct KeyAddTests {
    static let fakeAAGUID = "74776f66-6f6c-642d-6661-6b652d6b6579"  // "twofold-fake-key", the fake's default

    /// A daemon for pam://twofold.test and a fresh fake key.
    final class Fixture {
        let daemon: DaemonProcess
        let key: FakeFidoKey

        init() throws {
            try FakeFidoKey.build()
            // The shortest touch timeout: the test of a key that never answers waits for all of it.
            daemon = try DaemonProcess(extraConfig: "fido2_rp_id = pam://twofold.test\nfido2_timeout = 5")
            key = try FakeFidoKey()
        }

        deinit { key.remove() }

        /// twofoldctl with the fake key plugged in (`knobs`: its TWOFOLD_FAKE_FIDO* switches).
        func ctl(_ arguments: [String], input: String? = nil, knobs: [String: String] = [:], as user: TestUser? = nil) throws -> CLIResult {
            try CLI.run(arguments + ["--socket", daemon.socketPath], input: input, environment: key.environment(knobs), as: user)
        }

        func keys(_ user: String) throws -> [KeyInfo] {
            try daemon.ctl(["key", "list", "--user", user, "--json"]).json([KeyInfo].self)
        }
    }

    @Test("an admin registers a key for a user: touch asked, the key listed and counted; the same key again is refused; removed")
    func registerListRemove() throws {
        let fixture = try Fixture()
        let added = try fixture.ctl(["key", "add", "--name", "blue", "--user", "alice"])
        #expect(added.status == 0, "\(added)\n\(fixture.daemon.log)")
        #expect(added.stderr.contains("Touch your security key…"), "\(added)")
        #expect(added.stdout == "Added security key 'blue' of alice (ES256, model \(Self.fakeAAGUID), counter 0): "
                + "logins may use it where the policy allows 'fido2'.\n", "\(added)")
        let keys = try fixture.keys("alice")
        #expect(keys.map(\.name) == ["blue"] && keys.first?.algorithm == "ES256" && keys.first?.aaguid == Self.fakeAAGUID, "\(keys)")
        #expect(fixture.key.log().contains("makeCredential"), "\(fixture.key.log())")
        let status = try fixture.daemon.ctl(["status", "--user", "alice"])
        #expect(status.stdout.contains("Factors:        none besides the security keys\nSecurity keys:  1: blue\n"), "\(status)")

        // The key holds alice's credential: the exclude list makes it refuse a second one.
        let again = try fixture.ctl(["key", "add", "--name", "again", "--user", "alice"])
        #expect(again.status == 1 && again.stderr.contains("already registered for alice"), "\(again)")
        #expect(try fixture.keys("alice").count == 1)

        let users = try fixture.daemon.ctl(["users"])
        #expect(users.stdout.split(separator: "\n").contains { $0.hasPrefix("alice  active    fido2   0        1     -") }, "\(users)")

        let removed = try fixture.daemon.ctl(["key", "remove", "blue", "--user", "alice"])
        #expect(removed.status == 0 && removed.stdout == "Removed security key 'blue' of alice: it was the last factor, so 2FA is now off.\n",
                "\(removed)")
        #expect(try fixture.keys("alice").isEmpty)
    }

    @Test("a user with an app registers their own key after its current code where the policy allows keys; a wrong code touches no key (exit 5)")
    func ownKeyAfterACurrentCode() throws {
        let fixture = try Fixture()
        let me = try TestUser.user
        chmod(fixture.key.directory, 0o777)  // the fake key's state, written by the test user's twofoldctl
        let app = try Authenticator.random()
        #expect(try fixture.daemon.ctl(["import", me.name, "--uri", "-"], input: app.uri(account: me.name) + "\n").status == 0)
        // Users register keys themselves only where some login may use one.
        let refused = try fixture.ctl(["key", "add"], input: app.code() + "\n", as: me)
        #expect(refused.status == 4 && refused.stderr.contains("the policy allows no fido2"), "\(refused)")
        #expect(try fixture.daemon.ctl(["policy", "set", "--factor-kinds", "totp,hotp,recovery,fido2", "--yes"]).status == 0)

        let wrong = try fixture.ctl(["key", "add"], input: "000000\n", as: me)
        #expect(wrong.status == 5, "\(wrong)")
        #expect(!fixture.key.log().contains("makeCredential"), "\(fixture.key.log())")

        let added = try fixture.ctl(["key", "add", "--name", "mine"], input: app.code() + "\n", as: me)
        #expect(added.status == 0, "\(added)\n\(fixture.daemon.log)")
        #expect(added.stderr.hasPrefix("Adding a security key for \(me.name).\nCurrent code"), "\(added)")
        #expect(try fixture.keys(me.name).map(\.name) == ["mine"])
        let mine = try fixture.ctl(["key", "list"], as: me)
        #expect(mine.stdout.split(separator: "\n").dropFirst().first?.hasPrefix("\(me.name)  mine  ES256") == true, "\(mine)")
    }

    @Test("an admin revokes every key of a user at once (--all --user), with two keys registered from two keys")
    func revokeAll() throws {
        let fixture = try Fixture()
        let other = try FakeFidoKey()
        defer { other.remove() }
        #expect(try fixture.ctl(["key", "add", "--name", "blue", "--user", "alice"]).status == 0)
        let second = try CLI.run(["key", "add", "--name", "spare", "--user", "alice", "--socket", fixture.daemon.socketPath],
                                 environment: other.environment())
        #expect(second.status == 0, "\(second)")
        #expect(try fixture.keys("alice").map(\.name) == ["blue", "spare"])
        #expect(try fixture.daemon.ctl(["user", "show", "alice"]).stdout.contains("Security keys:  2: blue, spare\n"))

        let revoked = try fixture.daemon.ctl(["key", "remove", "--all", "--user", "alice"])
        #expect(revoked.status == 0, "\(revoked)")
        #expect(revoked.stdout == "Removed all 2 security keys of alice: it was the last factor, so 2FA is now off.\n", "\(revoked)")
        #expect(try fixture.keys("alice").isEmpty)
    }

    @Test("no key plugged in, a key that never answers, EdDSA only: each says what happened; nothing is stored")
    func keyFailures() throws {
        let fixture = try Fixture()
        let absent = try fixture.ctl(["key", "add", "--user", "alice"], knobs: ["TWOFOLD_FAKE_FIDO": "absent"])
        #expect(absent.status == 1 && absent.stderr.contains("no security key found"), "\(absent)")
        let hang = try fixture.ctl(["key", "add", "--user", "alice"], knobs: ["TWOFOLD_FAKE_FIDO": "hang"])
        #expect(hang.status == 1 && hang.stderr.contains("was not touched within 5 s"), "\(hang)")
        let eddsa = try fixture.ctl(["key", "add", "--user", "bob", "--json"], knobs: ["TWOFOLD_FAKE_FIDO_ALG": "eddsa"])
        #expect(eddsa.status == 0, "\(eddsa)")
        #expect(try fixture.keys("bob").first?.algorithm == "EdDSA")
        #expect(try fixture.keys("alice").isEmpty)
    }

    @Test("user verification required: the PIN is read from standard input, never from argv; a wrong PIN is refused")
    func pin() throws {
        let fixture = try Fixture()
        #expect(try fixture.daemon.ctl(["policy", "set", "--fido2-user-verification", "on", "--yes"]).status == 0)
        let pinKey = ["TWOFOLD_FAKE_FIDO_UV": "pin", "TWOFOLD_FAKE_FIDO_PIN": "4321"]
        let wrong = try fixture.ctl(["key", "add", "--user", "alice"], input: "1234\n", knobs: pinKey)
        #expect(wrong.status == 1 && wrong.stderr.contains("wrong PIN"), "\(wrong)")
        let none = try fixture.ctl(["key", "add", "--user", "alice"], input: "", knobs: pinKey)
        #expect(none.status == 7, "\(none)")
        let right = try fixture.ctl(["key", "add", "--user", "alice"], input: "4321\n", knobs: pinKey)
        #expect(right.status == 0, "\(right)\n\(fixture.daemon.log)")
        #expect(right.stderr.contains("PIN of the security key: "), "\(right)")
        #expect(!fixture.daemon.log.contains("4321"), "the PIN never reaches the daemon")
    }
}
