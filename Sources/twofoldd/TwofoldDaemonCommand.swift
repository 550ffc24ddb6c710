#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import TwofoldDaemon
import TwofoldProtocol

/// glibc's mallopt(3); <malloc.h> is not part of Swift's Glibc module.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
/// M_ARENA_MAX from <malloc.h>.
private let mallocArenaMax: Int32 = -8

/// `twofoldd`: the Twofold daemon. Reads its config file, then flags override it.
struct TwofoldDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofoldd",
        abstract: "The Twofold second-factor daemon: owns every secret and answers login and enrollment requests on a Unix socket.",
        discussion: "Configuration is read from --config (default /etc/twofold/twofoldd.conf; a missing default file means built-in defaults). Flags override the file. SIGHUP reads the file again (see twofoldd(8)). Every key, with its default, is in twofoldd.conf(5) and the shipped twofoldd.conf. Moving a single host's store into a fleet's tier: twofoldd move-in --help.",
        version: "twofoldd \(TwofoldVersion.string)")

    @Option(name: .long, help: "Config file.")
    var config: String?

    @Option(name: .long, help: "Unix socket path (ignored under systemd socket activation).")
    var socket: String?

    @Option(name: .long, help: "State directory (database and key file).")
    var stateDirectory: String?

    @Option(name: .long, help: "Key file (32 bytes, mode 0600; created on first start).")
    var keyFile: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    @Flag(name: .long, help: "Check the configuration, every key file and the database's key checks (read only), then exit.")
    var checkConfig = false

    @Option(name: .long, help: ArgumentHelp("Create a new key file for a key rotation (32 random bytes, mode 0600; never overwrites), print its id and exit.",
                                            valueName: "path"))
    var newKeyFile: String?

    mutating func run() async throws {
        if let newKeyFile {
            print("created key \(try KeyringCheck.createKeyFile(newKeyFile)) in \(newKeyFile)")
            return
        }
        var overrides: [ConfigurationSource.Override] = []
        if let socket { overrides.append(.init(key: "socket", value: socket, flag: "--socket")) }
        if let stateDirectory { overrides.append(.init(key: "state_directory", value: stateDirectory, flag: "--state-directory")) }
        if let keyFile { overrides.append(.init(key: "key_file", value: keyFile, flag: "--key-file")) }
        if let logLevel { overrides.append(.init(key: "log_level", value: logLevel, flag: "--log-level")) }
        let source = ConfigurationSource(file: config, overrides: overrides)
        let (settings, fileRead) = try source.load()
        if checkConfig {
            // A config that is fine but a daemon that would authorize every caller as the wrong
            // user is not "OK": the check reports a user namespace too (an error, exit 1).
            try UserNamespace.requireInitialNamespace()
            for line in try FleetCheck.report(settings.fleet, environment: ProcessInfo.processInfo.environment) { print(line) }
            if settings.fleet.role == .relay {
                print("configuration OK")
                return
            }
            // The file's policy keys as a whole (require = groups needs required_groups...): the
            // daemon would refuse to start on what only each value's check lets through.
            _ = try Policy(Policy.document(from: settings))
            // Every key file, and the database's verdict on them: what a start would refuse.
            for line in try await KeyringCheck.report(configuration: settings, environment: ProcessInfo.processInfo.environment) { print(line) }
            for line in try await Fido2Check.report(configuration: settings, environment: ProcessInfo.processInfo.environment) { print(line) }
            print("configuration OK")
            return
        }
        // Two malloc arenas are plenty for two event loops and the commit thread; glibc's default
        // (eight per core) only adds resident memory.
        _ = glibcMallopt(mallocArenaMax, 2)
        // Run Swift concurrency (control requests, enroll at login) on NIO's event loops instead of
        // a second thread pool. Logins do not use it: they run on the loops as handlers.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let level = LogLevelSwitch(settings.logLevel)
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, levelSwitch: level) }
        let logger = Logger(label: "twofoldd")
        let environment = ProcessInfo.processInfo.environment
        do {
            // Before anything is opened: in a user namespace (PrivateUsers=yes) SO_PEERCRED would
            // show most callers as uid 65534, and every authorization would be about the wrong user.
            try UserNamespace.requireInitialNamespace()
            let live = LiveConfiguration(settings, fileRead: fileRead, source: source, logLevel: level)
            if settings.fleet.role == .relay {
                try await RelayDaemon(configuration: settings, live: live, environment: environment, logger: logger).run(logger: logger)
            } else {
                let daemon = try await Daemon(configuration: settings, live: live, environment: environment, logger: logger)
                try await daemon.run(logger: logger)
            }
        } catch {
            logger.critical("twofoldd cannot run: \(error)")
            throw ExitCode(1)
        }
    }
}
