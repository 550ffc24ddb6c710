import Foundation
import Testing

/// `twofoldctl --help` and every subcommand's `--help`, compared with the committed texts in
/// Golden/ (COLUMNS=100). Rewrite them after an intended change with:
///
///     TWOFOLD_UPDATE_GOLDEN=1 swift test --filter TwofoldCLITests.GoldenHelpTests
@Suite struct GoldenHelpTests {
    static let commands: [[String]] = [
        [],
        ["enroll"], ["status"], ["recovery-codes"], ["disable"],
        ["users"],
        ["user"], ["user", "show"], ["user", "require"], ["user", "exempt"], ["user", "default"],
        ["user", "revoke"], ["user", "unlock"],
        ["policy"], ["policy", "show"], ["policy", "set"],
        ["import"], ["audit"],
    ]

    static var updating: Bool { ProcessInfo.processInfo.environment["TWOFOLD_UPDATE_GOLDEN"] == "1" }

    @Test(arguments: commands)
    func helpMatchesGolden(command: [String]) throws {
        let result = try CLI.run(command + ["--help"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty)
        let path = Paths.golden + "/" + (["twofoldctl"] + command).joined(separator: "-") + ".txt"
        if Self.updating {
            try result.stdout.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        let golden = try String(contentsOfFile: path, encoding: .utf8)
        #expect(result.stdout == golden, "help differs from \(path); rewrite with TWOFOLD_UPDATE_GOLDEN=1 if intended")
    }

    @Test func everySubcommandHasAGoldenFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Paths.golden).filter { $0.hasSuffix(".txt") }
        let expected = Self.commands.map { (["twofoldctl"] + $0).joined(separator: "-") + ".txt" }
        #expect(Set(files) == Set(expected))
    }

    @Test func helpSubcommandAndShortFlagAgree() throws {
        let long = try CLI.run(["policy", "set", "--help"])
        let viaHelp = try CLI.run(["help", "policy", "set"])
        let short = try CLI.run(["policy", "set", "-h"])
        #expect(long.stdout == viaHelp.stdout)
        #expect(long.stdout == short.stdout)
    }

    @Test func completionScriptsAreBuiltIn() throws {
        for shell in ["bash", "zsh", "fish"] {
            let result = try CLI.run(["--generate-completion-script", shell])
            #expect(result.status == 0, "\(shell): \(result)")
            #expect(result.stdout.contains("enroll"))
            #expect(result.stdout.contains("recovery-codes"))
        }
    }

    @Test func usageErrorsExitWithTwo() throws {
        for arguments in [["bogus"], ["users", "--nope"], ["enroll", "--qr", "sixel"], ["policy", "set"],
                          ["policy", "set", "--service", "sshd"], ["import", "alice"], ["audit", "--since", "yesterday"],
                          ["status", "--timeout", "0"]] {
            let result = try CLI.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.contains("Error:") || result.stderr.contains("error"), "\(arguments): \(result)")
        }
    }
}
