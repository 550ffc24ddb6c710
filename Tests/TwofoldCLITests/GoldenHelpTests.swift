import Foundation
import Testing
import TwofoldTestSupport

/// `twofoldctl --help` and every subcommand's `--help`, compared with the committed texts in
/// Golden/ (COLUMNS=100). Rewrite them after an intended change with:
///
///     TWOFOLD_UPDATE_GOLDEN=1 swift test --filter TwofoldCLITests.GoldenHelpTests
@Suite struct GoldenHelpTests {
    static let commands: [[String]] = [
        [],
        ["enroll"], ["status"], ["factors"], ["factors", "list"], ["factors", "remove"], ["recovery-codes"], ["disable"],
        ["contact"], ["contact", "add"], ["contact", "verify"], ["contact", "list"], ["contact", "remove"], ["contact", "import"],
        ["contact", "send-code"],
        ["key"], ["key", "add"], ["key", "list"], ["key", "remove"],
        ["ssh-key"], ["ssh-key", "add"], ["ssh-key", "list"], ["ssh-key", "remove"], ["ssh-key", "import"], ["authorized-keys"],
        ["users"],
        ["user"], ["user", "show"], ["user", "require"], ["user", "exempt"], ["user", "default"], ["user", "factor-kinds"],
        ["user", "revoke"], ["user", "unlock"],
        ["policy"], ["policy", "show"], ["policy", "set"], ["policy", "explain"],
        ["import"], ["bulk-import"], ["audit"], ["host"], ["host", "add"], ["host", "list"], ["host", "revoke"], ["doctor"], ["rekey"],
        ["backup"], ["metrics"], ["admin-session"], ["break-glass"], ["break-glass", "issue"], ["break-glass", "list"], ["break-glass", "clear"],
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

    /// A name argument-parser derives from the type costs a dynamic cast at every start (see Twofoldctl.swift).
    @Test func everyCommandNamesItself() throws {
        let directory = Paths.root + "/Sources/twofoldctl"
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            let configurations = text.components(separatedBy: "CommandConfiguration(").dropFirst()
            for configuration in configurations {
                #expect(configuration.prefix(200).contains("commandName:"), "\(file): a CommandConfiguration without commandName:")
            }
        }
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
                          ["status", "--timeout", "0"], ["factors", "remove"], ["factors", "remove", "Phone"], ["enroll", "--name", "recovery"],
                          ["host", "add", "host-a"], ["host", "add", "host_a", "--fingerprint", String(repeating: "ab", count: 32)],
                          ["host", "add", "host-a", "--fingerprint", "ab:cd"], ["host", "revoke"], ["audit", "--host", "a..b"],
                          ["contact", "add"], ["contact", "add", "--email", "nope"], ["contact", "add", "--phone", "12345"],
                          ["contact", "remove"], ["contact", "verify", "123456"], ["contact", "import"], ["contact", "send-code", "--channel", "fax"],
                          ["policy", "set", "--delivered-code-digits", "9"], ["policy", "set", "--factor-kinds", "totp,u2f"],
                          ["policy", "set", "--fido2-aaguid", "nope"], ["policy", "set", "--fido2-aaguid", "cb69481e8ff7403993ec0a2729a154a8"],
                          ["policy", "set", "--fido2-aaguid", "cb69481e-8ff7-4039-93ec-0a2729a154a8", "--no-fido2-aaguids"],
                          ["policy", "set", "--fido2-user-verification", "maybe"], ["user", "factor-kinds", "alice", "totp,u2f"],
                          ["key", "add", "--name", "Blue Key"], ["key", "add", "--name", "recovery"], ["key", "add", "--pin", "1234"],
                          ["key", "remove"], ["key", "remove", "--all"], ["key", "remove", "blue", "--all", "--user", "bob"],
                          ["key", "list", "--all", "--user", "bob"],
                          ["ssh-key", "add"], ["ssh-key", "add", "k.pub", "--name", "Laptop Key"], ["ssh-key", "add", "k.pub", "--name", "recovery"],
                          ["ssh-key", "add", "k.pub", "--code", "123456"], ["ssh-key", "remove"], ["ssh-key", "remove", "--all"],
                          ["ssh-key", "remove", "laptop", "--all", "--user", "bob"], ["ssh-key", "list", "--all", "--user", "bob"],
                          ["ssh-key", "import"], ["ssh-key", "import", "keys.txt", "--batch", "0"], ["authorized-keys"],
                          ["authorized-keys", "alice", "--json"], ["authorized-keys", "alice", "bob"],
                          ["policy", "set", "--ssh-key-types", "rsa"], ["policy", "set", "--ssh-verify-required", "yes"]] {
            let result = try CLI.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.contains("Error:") || result.stderr.contains("error"), "\(arguments): \(result)")
        }
    }
}

/// The committed man page (scripts/generate-man.sh) covers every command and renders without warnings.
@Suite struct ManPageTests {
    @Test func manPageCoversEveryCommandAndRendersCleanly() throws {
        let path = Paths.root + "/docs/man/twofoldctl.1"
        let page = try String(contentsOfFile: path, encoding: .utf8)
        #expect(page.hasPrefix(".\\\" \"Generated by swift-argument-parser\""))
        // Every command of the golden help texts, and every long option their help shows (hidden
        // ones are not there): a command or option added without regenerating the page fails here.
        for command in GoldenHelpTests.commands.compactMap(\.last) {
            #expect(page.contains(".It Em \(command)"), "\(command) missing from \(path); run scripts/generate-man.sh")
        }
        let goldens = try FileManager.default.contentsOfDirectory(atPath: Paths.golden).filter { $0.hasSuffix(".txt") }
        var options = Set<String>()
        for file in goldens {
            let text = try String(contentsOfFile: Paths.golden + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("  --") {
                if let name = line.dropFirst(2).split(separator: " ").first { options.insert(String(name.split(separator: "=")[0])) }
            }
        }
        #expect(options.isSuperset(of: ["--socket", "--json", "--dry-run", "--pam-dir"]), "the golden parser is broken: \(options.sorted())")
        for option in options.sorted() where !["--help", "--version"].contains(option) {
            #expect(page.contains(".It Fl \(option.dropFirst())"), "\(option) missing from \(path); run scripts/generate-man.sh")
        }
        #expect(page.contains("EXIT STATUS"))
        #expect(!page.contains("page-size"), "hidden options stay out of the page")
        let rendered = try CLI.runProgram(["/usr/bin/groff", "-mandoc", "-Tutf8", "-ww", "-z", path])
        #expect(rendered.status == 0, "\(rendered)")
        #expect(rendered.stderr.isEmpty, "groff warnings: \(rendered.stderr)")
    }
}
