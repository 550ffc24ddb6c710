import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
@testable import TwofoldDelivery

/// deliver.conf's parser, the command lines in it, and the detail made of a command's output.
@Suite("twofold-deliver's configuration and details")
struct DeliveryConfigurationTests {
    @Test("the defaults, and every key set")
    func keys() throws {
        let defaults = try DeliveryConfiguration.parse("")
        #expect(defaults == DeliveryConfiguration())
        #expect(defaults.socketPath == "/run/twofold-deliver/deliver.sock" && defaults.daemonUser == "twofoldd" && defaults.allowedUIDs.isEmpty)
        #expect(defaults.emailCommand == nil && defaults.smsCommand == nil && defaults.commandTimeoutMillis == 8_000 && defaults.maxConcurrent == 8)
        let all = try DeliveryConfiguration.parse("""
            # a comment
            socket = /tmp/d.sock
            DAEMON_USER = _twofold   # trailing comment
            allowed_uids = 0, 1000
            email_command = /usr/lib/twofold/send-email --config "/etc/twofold/my mail.conf"
            sms_command = /usr/bin/env TWOFOLD_MAIL_FROM=a@b.c "/opt/x y/send" "a \\"quoted\\" #word" ""
            command_timeout_ms = 100
            max_concurrent = 256
            """)
        #expect(all.socketPath == "/tmp/d.sock" && all.daemonUser == "_twofold" && all.allowedUIDs == [0, 1000])
        #expect(all.emailCommand == ChannelCommand(path: "/usr/lib/twofold/send-email", arguments: ["--config", "/etc/twofold/my mail.conf"]))
        #expect(all.smsCommand == ChannelCommand(path: "/usr/bin/env", arguments: ["TWOFOLD_MAIL_FROM=a@b.c", "/opt/x y/send", "a \"quoted\" #word", ""]))
        #expect(all.commandTimeoutMillis == 100 && all.maxConcurrent == 256)
    }

    @Test("errors name the file, the line and the problem", arguments: [
        ("socket = /s\nfrobnicate = 1", "deliver.conf:2: unknown key 'frobnicate'"),
        ("command_timeout_ms = 99", "deliver.conf:1: 'command_timeout_ms' must be a whole number from 100 to 60000"),
        ("command_timeout_ms = 60001", "deliver.conf:1: 'command_timeout_ms' must be a whole number from 100 to 60000"),
        ("max_concurrent = 0", "deliver.conf:1: 'max_concurrent' must be a whole number from 1 to 256"),
        ("\n\nemail_command = send-email", "deliver.conf:3: 'email_command': the program must be an absolute path (no shell looks it up), not 'send-email'"),
        ("sms_command = /bin/x \"open", "deliver.conf:1: 'sms_command': a double quote is not closed"),
        ("allowed_uids = 0, root", "deliver.conf:1: 'allowed_uids' must be a comma-separated list of numeric uids; 'root' is not one"),
        ("socket = /a\nsocket = /b", "deliver.conf:2: 'socket' is set twice"),
        ("just words", "deliver.conf:1: expected 'key = value'"),
        ("daemon_user =", "deliver.conf: daemon_user and allowed_uids are both empty: no one could send a request"),
        ("daemon_user = a b", "deliver.conf:1: 'daemon_user' must be a user name (or empty for none)"),
    ])
    func errors(text: String, message: String) {
        #expect(throws: DeliveryConfigurationError(message)) { try DeliveryConfiguration.parse(text) }
    }

    @Test("--check-config prints the effective settings without a command's arguments, and fails on a command that cannot run")
    func checkConfig() throws {
        let directory = try makeTemporaryDirectory("dlv-conf")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "email_command = /bin/true --password=hunter2 other\nallowed_uids = 7\n".write(toFile: directory + "/ok.conf", atomically: true, encoding: .utf8)
        let ok = try ChildProcess.run([TestPaths.twofoldDeliver, "--config", directory + "/ok.conf", "--check-config"])
        #expect(ok.status == 0 && ok.output == """
            socket = /run/twofold-deliver/deliver.sock
            daemon_user = twofoldd
            allowed_uids = 7
            email_command = /bin/true (and 2 arguments, not shown)
            sms_command = (none: sms requests are answered 'unconfigured')
            command_timeout_ms = 8000
            max_concurrent = 8
            configuration OK

            """, "\(ok.output)")
        try "sms_command = \(directory)\n".write(toFile: directory + "/dir.conf", atomically: true, encoding: .utf8)
        let notExecutable = try ChildProcess.run([TestPaths.twofoldDeliver, "--config", directory + "/dir.conf", "--check-config"])
        #expect(notExecutable.status == 1 && notExecutable.output.contains("error: sms_command: \(directory) is not an executable file"), "\(notExecutable.output)")
        try "max_concurrent = lots\n".write(toFile: directory + "/bad.conf", atomically: true, encoding: .utf8)
        let bad = try ChildProcess.run([TestPaths.twofoldDeliver, "--config", directory + "/bad.conf", "--check-config"])
        #expect(bad.status == 2 && bad.output == "twofold-deliver: \(directory)/bad.conf:1: 'max_concurrent' must be a whole number from 1 to 256\n", "\(bad.output)")
        let missing = try ChildProcess.run([TestPaths.twofoldDeliver, "--config", directory + "/none.conf", "--check-config"])
        #expect(missing.status == 2 && missing.output.contains("cannot read config file \(directory)/none.conf: No such file or directory"), "\(missing.output)")
    }

    @Test("the shipped deliver.conf lists every key the parser takes, commented out, with the code's defaults")
    func shippedFile() throws {
        let text = try String(contentsOfFile: TestPaths.root + "/systemd/deliver.conf", encoding: .utf8)
        var listed: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("#") && line.dropFirst().first?.isLetter == true {
            guard let eq = line.firstIndex(of: "=") else { continue }
            listed[line.dropFirst()[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        #expect(Set(listed.keys) == Set(DeliveryConfigurationTests.parserKeys()), "\(listed.keys.sorted())")
        // Uncommented, the file is the defaults.
        let uncommented = listed.map { "\($0.key) = \($0.value)" }.joined(separator: "\n")
        #expect(try DeliveryConfiguration.parse(uncommented) == DeliveryConfiguration())
        #expect(try DeliveryConfiguration.parse(text) == DeliveryConfiguration())
    }

    /// The keys `DeliveryConfiguration.set(key:…)` switches on.
    static func parserKeys() -> [String] {
        let source = (try? String(contentsOfFile: TestPaths.root + "/Sources/TwofoldDelivery/DeliveryConfiguration.swift", encoding: .utf8)) ?? ""
        guard let start = source.range(of: "func set(key:"), let end = source.range(of: "default:", range: start.upperBound..<source.endIndex) else { return [] }
        return source[start.upperBound..<end.lowerBound].matches(of: /case "([a-z_]+)"/).map { String($0.1) }
    }

    @Test("a detail: the first non-blank line, the code replaced before the cut, controls replaced, at most 200 bytes")
    func details() {
        let code = "12345678"
        #expect(OutputDetail.failure("exit status 1", output: Array("\n  \nfirst \(code) line\nsecond \(code)\n".utf8), code: code)
                == "exit status 1: first [code] line")
        #expect(OutputDetail.failure("exit status 2", output: [], code: code) == "exit status 2")
        #expect(OutputDetail.firstLine(Array("a\u{1B}[2Jb\tc\u{202E}d\\e".utf8), code: code) == "a?[2Jb?c?d\\e")
        // A code right at the cut: replaced first, so not even its first digits remain.
        let long = String(repeating: "x", count: 195) + code + String(repeating: "y", count: 50)
        let detail = OutputDetail.firstLine(Array(long.utf8), code: code)
        #expect(detail.utf8.count <= 200 && detail.hasSuffix("...") && !detail.contains("1234"), "\(detail)")
        // Multi-byte characters are cut whole.
        let wide = OutputDetail.firstLine(Array(String(repeating: "é", count: 150).utf8), code: code)
        #expect(wide.utf8.count <= 200 && wide == String(repeating: "é", count: 98) + "...")
        // Invalid UTF-8 does not get through as such.
        #expect(OutputDetail.firstLine([0x66, 0xFF, 0x6F], code: code) == "f\u{FFFD}o")
    }
}
