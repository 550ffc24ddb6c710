import Foundation
import Testing
import TwofoldTestSupport

/// `twofoldctl doctor`'s Delivery section against a real twofoldd and a real twofold-deliver.
@Suite struct DoctorDeliveryTests {
    @Test("delivered codes: off without email or sms in the policy; allowed with no service is an error; a service and executable commands are ok")
    func delivery() throws {
        let delivery = try DeliveryServiceProcess(start: false)
        let fixture = try DoctorFixture(extraConfig: "delivery_socket = \(delivery.socketPath)")
        try fixture.file("sshd", fixture.exampleSSHD)
        let deliverConfig = fixture.directory + "/deliver.conf"
        try "email_command = \(TestPaths.sendEmail)\nsms_command = /nonexistent/send-sms\n".write(toFile: deliverConfig, atomically: true, encoding: .utf8)
        let arguments = ["--no-sshd", "--deliver-config", deliverConfig]

        let (_, off) = try fixture.report(arguments)
        #expect(off.has("delivery.off", "ok") && off.named("delivery.service").isEmpty, "\(off)")

        #expect(try fixture.daemon.ctl(["policy", "set", "--factor-kinds", "totp,recovery,email", "--yes"]).status == 0)
        let (down, report) = try fixture.report(arguments)
        #expect(down == 1 && report.has("delivery.service", "error"), "\(report)")
        #expect(report.named("delivery.command").map(\.severity) == ["ok"], "only email is allowed: \(report)")

        try delivery.start()
        #expect(try fixture.daemon.ctl(["policy", "set", "--service-factor-kinds", "sudo=sms", "--yes"]).status == 0)
        let (up, upReport) = try fixture.report(arguments)
        #expect(upReport.has("delivery.service", "ok"), "\(upReport)")
        #expect(upReport.named("delivery.command").map(\.severity).sorted() == ["error", "ok"], "sms has no executable command: \(upReport)")
        #expect(up == 1)
        let (text, _) = try fixture.doctor(arguments, json: false)
        #expect(text.stdout.contains("\nDelivery\n"), "\(text.stdout)")
    }
}
