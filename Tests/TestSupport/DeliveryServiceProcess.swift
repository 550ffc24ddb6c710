import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `twofold-deliver` on a socket in a temporary directory, taking requests from this
/// process's uid. By default each channel's command is a capture script (a real command, as an
/// admin would configure one) that writes the message with its environment to `spool`, one file
/// per message; `commands` replaces it per channel. Ready on READY=1.
public final class DeliveryServiceProcess: @unchecked Sendable {
    public let directory: String
    public let socketPath: String
    public let configPath: String
    public let logPath: String
    public let spool: String
    public private(set) var process: ChildProcess?
    public static var binary: String { TestPaths.products + "/twofold-deliver" }

    /// `commands`: channel → command line (nil entry: the capture script; absent channel: capture).
    public init(commands: [String: String] = [:], timeoutMillis: Int = 3_000, extraConfig: String = "", start: Bool = true) throws {
        directory = try makeTemporaryDirectory("tfdeliver")
        socketPath = directory + "/deliver.sock"
        configPath = directory + "/deliver.conf"
        logPath = directory + "/deliver.log"
        spool = directory + "/spool"
        mkdir(spool, 0o755)
        let capture = directory + "/capture"
        try writeScript(capture, """
        #!/bin/sh
        # Writes the message and what the command was told to one file per message.
        set -eu
        n=$(date +%s%N)
        { printf 'Channel: %s\\nTo: %s\\nUser: %s\\nSubject: %s\\nArgs: %s\\n\\n' "$TWOFOLD_CHANNEL" "$TWOFOLD_DESTINATION" "$TWOFOLD_USER" "${TWOFOLD_SUBJECT:-}" "$*"; cat; } > "\(spool)/.$n"
        mv "\(spool)/.$n" "\(spool)/$TWOFOLD_CHANNEL-$n.txt"
        """)
        try """
        socket = \(socketPath)
        allowed_uids = \(getuid())
        email_command = \(commands["email"] ?? capture)
        sms_command = \(commands["sms"] ?? capture)
        command_timeout_ms = \(timeoutMillis)
        \(extraConfig)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
        if start { try self.start() }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public func start() throws {
        let notifyPath = directory + "/notify.\(UInt32.random(in: 0...UInt32.max)).sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(log) }
        let process = try ChildProcess([Self.binary, "--config", configPath], environment: environment, fds: [1: log, 2: log])
        self.process = process
        try notify.waitForReady(timeoutSeconds: 30, isRunning: { process.isRunning }, logPath: logPath)
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        process.signal(SIGTERM)
        process.wait()
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The captured messages of `channel`, oldest first (headers, a blank line, the message).
    public func messages(_ channel: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [])
            .filter { $0.hasPrefix(channel + "-") && $0.hasSuffix(".txt") }.sorted()
        return names.compactMap { try? String(contentsOfFile: spool + "/" + $0, encoding: .utf8) }
    }

    /// The code in the newest message of `channel` (the first run of 6 to 8 digits after "code is").
    public func lastCode(_ channel: String) -> String? {
        messages(channel).last.flatMap(Self.code(in:))
    }

    public static func code(in message: String) -> String? {
        guard let range = message.range(of: #"code is \d{6,8}"#, options: .regularExpression) else { return nil }
        return String(message[range].dropFirst("code is ".count))
    }
}
