import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `twofold-deliver` on a socket in a temporary directory, its output (the log) in a file.
/// By default it takes requests from this process's uid, and each channel's command is a capture
/// script (a real command, as an admin would configure one) that writes the message with its
/// environment to `spool`, one file per message; `commands` replaces it per channel. Ready on its
/// READY=1 on NOTIFY_SOCKET, as systemd would see it.
public final class DeliveryServiceProcess: @unchecked Sendable {
    public let directory: String
    public let socketPath: String
    public let configPath: String
    public let logPath: String
    public let spool: String
    public private(set) var process: ChildProcess?
    public static var binary: String { TestPaths.products + "/twofold-deliver" }
    /// The config's lines before a test's own (`configure`).
    private let baseConfig: String
    private let environment: [String: String]?

    /// `commands`: channel → command line. A channel not in it gets the capture script, or with
    /// `capture` false no command (`extraConfig` may give one; else its requests are answered
    /// `unconfigured`). `timeoutMillis`: command_timeout_ms, nil for the service's default.
    /// `peers`: the keys that say who may send requests, instead of `allowed_uids =` this
    /// process's uid. `environment`: the service's whole environment (nil: this process's);
    /// NOTIFY_SOCKET is added.
    public init(commands: [String: String] = [:], capture: Bool = true, timeoutMillis: Int? = 3_000, peers: String? = nil,
                extraConfig: String = "", environment: [String: String]? = nil, start: Bool = true) throws {
        directory = try makeTemporaryDirectory("tfdeliver")
        socketPath = directory + "/deliver.sock"
        configPath = directory + "/deliver.conf"
        logPath = directory + "/deliver.log"
        spool = directory + "/spool"
        self.environment = environment
        mkdir(spool, 0o755)
        let capture = capture ? directory + "/capture" : nil
        if let capture {
            try writeScript(capture, """
            #!/bin/sh
            # Writes the message and what the command was told to one file per message.
            set -eu
            n=$(date +%s%N)
            { printf 'Channel: %s\\nTo: %s\\nUser: %s\\nSubject: %s\\nArgs: %s\\n\\n' "$TWOFOLD_CHANNEL" "$TWOFOLD_DESTINATION" "$TWOFOLD_USER" "${TWOFOLD_SUBJECT:-}" "$*"; cat; } > "\(spool)/.$n"
            mv "\(spool)/.$n" "\(spool)/$TWOFOLD_CHANNEL-$n.txt"
            """)
        }
        var lines = ["socket = \(socketPath)", peers ?? "allowed_uids = \(getuid())"]
        for channel in ["email", "sms"] {
            if let command = commands[channel] ?? capture { lines.append("\(channel)_command = \(command)") }
        }
        if let timeoutMillis { lines.append("command_timeout_ms = \(timeoutMillis)") }
        baseConfig = lines.joined(separator: "\n") + "\n"
        try configure(extraConfig)
        if start { try self.start() }
    }

    deinit {
        // SIGKILL, not stop(): a test that wanted the graceful stop asked for it, and a SIGTERM that
        // comes just after READY=1 can be lost (twofold-deliver ignores SIGTERM until its dispatch
        // source is registered), which would leave this waiting for ever.
        if let process, process.isRunning {
            process.signal(SIGKILL)
            process.wait()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// (Re)writes the config: the lines the initializer made, then `extraConfig`'s.
    public func configure(_ extraConfig: String) throws {
        try (baseConfig + extraConfig + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts the service; `environment` replaces the initializer's.
    public func start(environment: [String: String]? = nil) throws {
        let notifyPath = directory + "/notify.\(UInt32.random(in: 0...UInt32.max)).sock"
        let notify = try NotifyListener(path: notifyPath)
        defer { notify.close() }
        var environment = environment ?? self.environment ?? ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notifyPath
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw HarnessError("cannot open \(logPath)") }
        defer { close(log) }
        let process = try ChildProcess([Self.binary, "--config", configPath], environment: environment, fds: [1: log, 2: log])
        self.process = process
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { process.isRunning }, logPath: logPath)
    }

    /// SIGTERM, then the exit status (-1: never started).
    @discardableResult
    public func stop() -> Int32 {
        guard let process else { return -1 }
        process.signal(SIGTERM)
        return process.wait()
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
