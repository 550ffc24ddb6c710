// The fake FIDO2 key (pam/tests/fake_fido.so) proved with libfido2 itself before any test relies on
// it: pam/tests/fake_fido_check.sh drives libfido2 as the module and twofoldctl do, once per knob,
// and checks the results with libfido2's verify functions.

import Foundation
import Testing
import TwofoldTestSupport

@Suite("Fake FIDO2 key through libfido2")
struct FakeKeyTests {
    @Test("Every knob of the fake key does what libfido2 and its verify functions say")
    func everyKnob() throws {
        try FakeFidoKey.build()
        let (status, output) = try ChildProcess.run(["/bin/bash", FakeFidoKey.checkScript],
                                                   environment: ["PATH": "/usr/bin:/bin"])
        #expect(status == 0, "fake_fido_check.sh exited \(status):\n\(output)")
        #expect(output.contains("fake_fido_check.sh: all scenarios passed"), "\(output)")
    }

    @Test("A key plugged in through FakeFidoKey's environment is found, and its log shows it")
    func environmentPlugsTheKeyIn() throws {
        try FakeFidoKey.build()
        let key = try FakeFidoKey()
        defer { key.remove() }
        let (status, output) = try ChildProcess.run([FakeFidoKey.check, "info"],
                                                   environment: key.environment(["PATH": "/usr/bin:/bin"]))
        #expect(status == 0, "\(output)")
        #expect(output.contains("devices=1\n") && output.contains("fido2=1\n"), "\(output)")
        #expect(key.log() == ["manifest", "open", "getInfo", "getInfo", "close"], "\(key.log())")

        let absent = try FakeFidoKey()
        defer { absent.remove() }
        let (_, none) = try ChildProcess.run([FakeFidoKey.check, "info"],
                                             environment: absent.environment(["TWOFOLD_FAKE_FIDO": "absent"]))
        #expect(none.contains("devices=0\n"), "\(none)")
        #expect(absent.log() == ["manifest"], "\(absent.log())")
    }
}
