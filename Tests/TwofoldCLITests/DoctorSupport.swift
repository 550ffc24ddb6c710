import Foundation
import Testing
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What `twofoldctl doctor --json` prints.
struct DoctorOutput: Decodable, CustomStringConvertible {
    struct Item: Decodable {
        var check: String
        var severity: String
        var subject: String
        var message: String
        var fix: String?
    }
    struct Users: Decodable {
        struct Named: Decodable { var user: String }
        var considered: Int
        var required: Int
        var refused: Int
        var sources: [String]
        var notes: [String]
        var refusedUsers: [Named]
        var graceUsers: [Named]
    }

    var ok: Bool
    var exitCode: Int32
    var findings: [Item]
    var services: [String]?
    var users: Users?

    func named(_ check: String) -> [Item] { findings.filter { $0.check == check } }
    func has(_ check: String, _ severity: String) -> Bool { named(check).contains { $0.severity == severity } }
    var problems: [Item] { findings.filter { $0.severity != "ok" } }
    var description: String {
        findings.map { "\($0.severity) \($0.check) \($0.subject): \($0.message)" }.joined(separator: "\n")
    }
}

/// A real twofoldd, a PAM directory and a module directory in a temporary directory, and sshd
/// configurations with their own host key, for `twofoldctl doctor`.
final class DoctorFixture {
    let daemon: DaemonProcess
    let directory: String
    var pamDir: String { directory + "/pam.d" }
    /// Holds pam_twofold.so (a link to the built module) for names without a path.
    var moduleDir: String { directory + "/security" }

    /// Debian 12's stock common-auth (pam_unix decides; pam_deny after a wrong password).
    static let commonAuth = [
        "auth\t[success=1 default=ignore]\tpam_unix.so nullok",
        "auth\trequisite\t\t\tpam_deny.so",
        "auth\trequired\t\t\tpam_permit.so",
        "auth\toptional\t\t\tpam_cap.so",
    ]
    static let commonAccount = [
        "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so",
        "account\trequisite\t\t\tpam_deny.so",
        "account\trequired\t\t\tpam_permit.so",
    ]

    /// The directory where this system's libpam keeps its modules (pam_permit.so and the others).
    static let systemModuleDir: String = {
        let candidates = ["/lib/x86_64-linux-gnu/security", "/lib/aarch64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
                          "/usr/lib/aarch64-linux-gnu/security", "/lib/security", "/usr/lib/security"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/pam_permit.so") } ?? candidates[0]
    }()

    /// `backedUp`: a `twofoldctl backup` taken first, as on a host set up as the README says (else
    /// doctor's Store section warns that there is none).
    init(extraConfig: String = "", backedUp: Bool = true) throws {
        try PAMBuild.require()
        daemon = try DaemonProcess(extraConfig: extraConfig)
        directory = try makeTemporaryDirectory("tfdoc")
        if backedUp {
            let backup = try daemon.ctl(["backup", "--output", directory + "/backup.sqlite"])
            guard backup.status == 0 else { throw HarnessError("twofoldctl backup: \(backup)") }
        }
        mkdir(pamDir, 0o755)
        mkdir(moduleDir, 0o755)
        symlink(PAMBuild.module, moduleDir + "/pam_twofold.so")
        try file("common-auth", Self.commonAuth)
        try file("common-account", Self.commonAccount)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// `auth CONTROL <the built module> socket=<the daemon's> OPTIONS`.
    func twofold(_ control: String = "required", _ options: String = "", module: String = PAMBuild.module) -> String {
        "auth \(control) \(module) socket=\(daemon.socketPath)" + (options.isEmpty ? "" : " " + options)
    }

    /// pam/examples/sshd's auth lines (public key first, then the module), with Debian's account stack.
    var exampleSSHD: [String] {
        ["# public key first, then the code", twofold(), "auth optional pam_permit.so", "account required pam_nologin.so", "@include common-account"]
    }

    func file(_ name: String, _ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: pamDir + "/" + name, atomically: true, encoding: .utf8)
        chmod(pamDir + "/" + name, 0o644)
    }

    /// An sshd configuration: a host key of its own (sshd -T needs one) and `lines`.
    func sshdConfig(_ name: String, _ lines: [String]) throws -> String {
        let key = directory + "/host_ed25519"
        if !FileManager.default.fileExists(atPath: key) {
            let made = try ChildProcess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
            guard made.status == 0 else { throw HarnessError("ssh-keygen: \(made.output)") }
        }
        let path = directory + "/" + name
        try (["HostKey \(key)"] + lines).joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `twofoldctl doctor --json` with this directory's PAM files and modules (and `arguments`).
    func doctor(_ arguments: [String] = ["--no-sshd"], json: Bool = true, as user: TestUser? = nil) throws -> (CLIResult, DoctorOutput?) {
        let result = try daemon.ctl(["doctor", "--pam-dir", pamDir, "--module-dir", moduleDir, "--module-dir", Self.systemModuleDir]
                                    + (json ? ["--json"] : []) + arguments, as: user)
        return (result, json ? try? result.json(DoctorOutput.self) : nil)
    }

    /// Runs doctor and returns its report, recording an issue when the output is not the JSON document.
    func report(_ arguments: [String] = ["--no-sshd"], as user: TestUser? = nil) throws -> (status: Int32, report: DoctorOutput) {
        let (result, report) = try doctor(arguments, as: user)
        guard let report else { throw HarnessError("doctor printed no report: \(result)") }
        #expect(report.exitCode == result.status, "\(result)")
        return (result.status, report)
    }

    /// The result real libpam gives for `service` of this directory (pam_driver): "0 PAM_SUCCESS".
    func libpam(_ service: String, user: String, answers: [String] = []) throws -> String {
        let run = try CLI.runProgram([PAMBuild.driver, pamDir, service, user], input: answers.map { $0 + "\n" }.joined())
        return run.stdout.split(separator: "\n").last { $0.hasPrefix("RESULT ") }.map { String($0.dropFirst(7)) } ?? "no result: \(run)"
    }

    /// Gives `user` an active enrollment with a fresh secret; returns the app.
    func enroll(_ user: String) throws -> Authenticator {
        let app = try Authenticator.random()
        let result = try daemon.ctl(["import", user, "--uri", "-"], input: app.uri(account: user) + "\n")
        guard result.status == 0 else { throw HarnessError("import \(user): \(result)") }
        return app
    }
}
