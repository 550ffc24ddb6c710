#if canImport(Glibc)
import Glibc
#endif
import TwofoldSystemd

/// Everything `twofold-deliver` can be configured with: one field per key of its config file
/// (`systemd/deliver.conf`, installed as /etc/twofold/deliver.conf, lists them with their defaults;
/// deliver.conf(5) documents them).
public struct DeliveryConfiguration: Sendable, Equatable {
    public static let defaultFile = "/etc/twofold/deliver.conf"

    /// Unix socket to listen on (ignored when systemd passes a socket).
    public var socketPath = "/run/twofold-deliver/deliver.sock"
    /// The account whose uid may send requests, looked up at each connection (twofoldd runs with
    /// DynamicUser=, so its uid changes from start to start). Nil: no account (then `allowedUIDs`).
    public var daemonUser: String? = "twofoldd"
    /// Uids that may send requests besides `daemonUser`'s (tests; a daemon with a fixed uid).
    public var allowedUIDs: [UInt32] = []
    /// The command for each channel; nil answers its requests `unconfigured`.
    public var emailCommand: ChannelCommand?
    public var smsCommand: ChannelCommand?
    /// How long a command may run before its process group is killed (`timeout`).
    public var commandTimeoutMillis = 8_000
    /// Commands run at once at most; a request beyond them is answered `failed` ("busy") at once.
    public var maxConcurrent = 8

    public init() {}

    public func command(for channel: String) -> ChannelCommand? {
        switch channel {
        case "email": emailCommand
        case "sms": smsCommand
        default: nil
        }
    }

    /// Connections served at once, those waiting for their request included: the commands, and
    /// room for as many again being read or answered `busy`. Further ones are answered `busy`
    /// without being read.
    public var maxConnections: Int { 2 * maxConcurrent + 4 }
}

/// A configuration error, with the file, line and reason.
public struct DeliveryConfigurationError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension DeliveryConfiguration {
    /// The ranges of the numeric keys.
    public static let timeoutRange = 100...60_000
    public static let concurrencyRange = 1...256

    /// Reads `path` and parses it. `required`: a missing file is an error (an explicit --config);
    /// otherwise a missing file gives the defaults.
    public static func load(path: String, required: Bool) throws -> DeliveryConfiguration {
        guard let text = try ConfigFile.read(path, required: required, error: DeliveryConfigurationError.init) else { return DeliveryConfiguration() }
        return try parse(text, source: path)
    }

    /// Parses `key = value` lines (`#` outside double quotes starts a comment) over the defaults.
    /// Unknown keys, repeated keys and bad values are errors naming the line.
    public static func parse(_ text: String, source: String = "deliver.conf") throws -> DeliveryConfiguration {
        var config = DeliveryConfiguration()
        try ConfigFile.parse(text, source: source, comments: .hashOutsideQuotes, error: DeliveryConfigurationError.init) { key, value, at in
            try config.set(key: key, value: value, at: at)
        }
        if config.daemonUser == nil && config.allowedUIDs.isEmpty {
            throw DeliveryConfigurationError("\(source): daemon_user and allowed_uids are both empty: no one could send a request")
        }
        return config
    }

    /// Sets one key.
    public mutating func set(key: String, value: String, at: String) throws {
        func int(_ range: ClosedRange<Int>) throws -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw DeliveryConfigurationError("\(at): '\(key)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func command() throws -> ChannelCommand? {
            if value.isEmpty { return nil }
            do {
                return try ChannelCommand(parsing: value)
            } catch let error as ChannelCommand.Invalid {
                throw DeliveryConfigurationError("\(at): '\(key)': \(error.description)")
            }
        }
        switch key {
        case "socket":
            guard value.hasPrefix("/") || value.hasPrefix(".") else { throw DeliveryConfigurationError("\(at): 'socket' must be a path") }
            socketPath = value
        case "daemon_user":
            guard value.utf8.count <= 256, !value.contains(where: { $0.isWhitespace || $0 == ":" || $0.asciiValue.map { $0 < 0x20 } == true }) else {
                throw DeliveryConfigurationError("\(at): 'daemon_user' must be a user name (or empty for none)")
            }
            daemonUser = value.isEmpty ? nil : value
        case "allowed_uids":
            var uids: [UInt32] = []
            for part in value.split(separator: ",") {
                let text = ConfigFile.trimmed(part)
                guard let uid = UInt32(text), uid != UInt32.max else {
                    throw DeliveryConfigurationError("\(at): 'allowed_uids' must be a comma-separated list of numeric uids; '\(text)' is not one")
                }
                uids.append(uid)
            }
            allowedUIDs = uids
        case "email_command": emailCommand = try command()
        case "sms_command": smsCommand = try command()
        case "command_timeout_ms": commandTimeoutMillis = try int(Self.timeoutRange)
        case "max_concurrent": maxConcurrent = try int(Self.concurrencyRange)
        default:
            throw DeliveryConfigurationError("\(at): unknown key '\(key)'")
        }
    }

    /// The effective settings as `key = value` lines, for --check-config. A command's arguments are
    /// not shown (an admin may have put a password in one); its program is.
    public var summary: [String] {
        func command(_ command: ChannelCommand?, _ channel: String) -> String {
            guard let command else { return "(none: \(channel) requests are answered 'unconfigured')" }
            let n = command.arguments.count
            return command.path + (n == 0 ? "" : " (and \(n) argument\(n == 1 ? "" : "s"), not shown)")
        }
        return [
            "socket = \(socketPath)",
            "daemon_user = \(daemonUser ?? "(none)")",
            "allowed_uids = \(allowedUIDs.isEmpty ? "(none)" : allowedUIDs.map(String.init).joined(separator: ", "))",
            "email_command = \(command(emailCommand, "email"))",
            "sms_command = \(command(smsCommand, "sms"))",
            "command_timeout_ms = \(commandTimeoutMillis)",
            "max_concurrent = \(maxConcurrent)",
        ]
    }

    /// What would make requests fail although the file parses: a configured program that is not
    /// an executable file.
    public var problems: [String] {
        var found: [String] = []
        for (key, command) in [("email_command", emailCommand), ("sms_command", smsCommand)] {
            guard let command else { continue }
            var info = stat()
            if stat(command.path, &info) != 0 {
                found.append("\(key): \(command.path): \(String(cString: strerror(errno)))")
            } else if (info.st_mode & S_IFMT) != S_IFREG || access(command.path, X_OK) != 0 {
                found.append("\(key): \(command.path) is not an executable file")
            }
        }
        return found
    }
}
