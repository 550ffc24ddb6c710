import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// SIGHUP (`systemctl reload twofoldd`): the file is read again; a good one is in force for the
/// next request, a bad one is refused and the running configuration kept. Each reload is awaited
/// on the daemon's READY=1 (sd_notify), never by sleeping.
@Suite struct ConfigurationReloadTests {
    func rewrite(_ daemon: DaemonProcess, _ lines: String, socket: String? = nil) throws {
        let config = """
        socket = \(socket ?? daemon.socketPath)
        state_directory = \(daemon.directory)/state
        log_level = debug
        throttle_delay_ms = 0
        issuer = TwofoldTest
        \(lines)
        """
        try config.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
    }

    func policy(_ daemon: DaemonProcess) throws -> PolicyDocument {
        guard case .policy(let document) = try daemon.control(.policyShow) else { throw HarnessError("no policy") }
        return document
    }

    @Test func aGoodFileIsInForceAfterTheReload() throws {
        let daemon = try DaemonProcess()
        let admin = try TestUser.admin
        #expect(try daemon.ctl(["users"], as: admin).status == 4, "no admin group yet")
        #expect(try policy(daemon).require == "nobody")

        try rewrite(daemon, "admin_group = \(TestUser.adminGroup)\nrequire = everyone\nmax_failures = 4")
        let status = try daemon.reload()
        #expect(status.hasPrefix("configuration reloaded from \(daemon.configPath)"), "\(status)")
        #expect(!status.contains("restart"), "\(status)")
        let users = try daemon.ctl(["users"], as: admin)
        #expect(users.status == 0, "admin_group is in force: \(users)")
        let reloaded = try policy(daemon)
        #expect(reloaded.require == "everyone" && reloaded.maxFailures == 4, "the file's policy keys are in force: \(reloaded)")
        #expect(daemon.log.contains("configuration reloaded"))
    }

    @Test func aBadFileIsRefusedAndTheRunningConfigurationKept() throws {
        let daemon = try DaemonProcess(extraConfig: "admin_group = \(TestUser.adminGroup)\nmax_failures = 4")
        try rewrite(daemon, "admin_group = nosuchgroup\nmax_failures = 5\nwindow = 99")
        let status = try daemon.reload()
        #expect(status.contains("refused") && status.contains("\(daemon.configPath):8: 'window'"), "the line is named: \(status)")
        #expect(try daemon.ctl(["users"], as: try TestUser.admin).status == 0, "the old admin_group is still in force")
        #expect(try policy(daemon).maxFailures == 4)
        #expect(daemon.log.contains("configuration reload refused"), "\(daemon.log)")
        // A missing file is refused the same way (the daemon was started with --config).
        try FileManager.default.removeItem(atPath: daemon.configPath)
        #expect(try daemon.reload().contains("refused"))
        #expect(try policy(daemon).maxFailures == 4)
    }

    @Test func restartOnlyKeysWaitForARestartAndAStoredPolicyWins() throws {
        let daemon = try DaemonProcess()
        var stored = try policy(daemon)
        stored.maxFailures = 7
        #expect(try daemon.control(.policySet(stored)) == .ok)
        try rewrite(daemon, "max_failures = 3", socket: daemon.directory + "/elsewhere.sock")
        let status = try daemon.reload()
        #expect(status.contains("needs a restart: socket"), "\(status)")
        // Still on the old socket, and the stored policy, not the file's, is in force.
        #expect(try policy(daemon).maxFailures == 7)
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/elsewhere.sock"))
    }

    @Test(arguments: [("require = groups", "require = groups needs at least one required group"),
                      ("unenrolled = grace", "unenrolled = grace needs grace days")])
    func checkConfigJudgesThePolicyKeysTogether(line: String, complaint: String) throws {
        let directory = try makeTemporaryDirectory("chk")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "\(line)\n".write(toFile: directory + "/bad.conf", atomically: true, encoding: .utf8)
        let bad = try CLI.runProgram([TestPaths.twofoldd, "--config", directory + "/bad.conf", "--check-config"])
        #expect(bad.status == 1, "\(bad)")
        #expect((bad.stdout + bad.stderr).contains(complaint), "\(bad)")
        try "\(line)\nrequired_groups = wheel\ngrace_days = 3\nstate_directory = \(directory)/state\n"
            .write(toFile: directory + "/good.conf", atomically: true, encoding: .utf8)
        let good = try CLI.runProgram([TestPaths.twofoldd, "--config", directory + "/good.conf", "--check-config"])
        // The key file a first start would create is named; nothing is created.
        #expect(good.status == 0 && good.stdout == """
            key file \(directory)/state/twofold.key does not exist yet: twofoldd creates it at the first start
            configuration OK

            """, "\(good)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/state"))
    }
}
