#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import TwofoldDaemon

/// glibc's mallopt(3); <malloc.h> is not part of Swift's Glibc module.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
/// M_ARENA_MAX from <malloc.h>.
private let mallocArenaMax: Int32 = -8

/// `twofoldd`: the Twofold daemon. Reads its config file, then flags override it.
@main
struct TwofoldDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofoldd",
        abstract: "The Twofold second-factor daemon: owns every secret and answers login and enrollment requests on a Unix socket.",
        discussion: "Configuration is read from --config (default /etc/twofold/twofoldd.conf; a missing default file means built-in defaults). Flags override the file. Every key, with its default, is in the shipped twofoldd.conf (systemd/twofoldd.conf in the source).")

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

    @Flag(name: .long, help: "Check the configuration and exit.")
    var checkConfig = false

    mutating func run() async throws {
        var settings = DaemonConfiguration()
        let path = config ?? "/etc/twofold/twofoldd.conf"
        if let text = try readFile(path, required: config != nil) {
            settings = try DaemonConfiguration.parse(text, source: path)
        }
        if let socket { try settings.set(key: "socket", value: socket, at: "--socket") }
        if let stateDirectory { try settings.set(key: "state_directory", value: stateDirectory, at: "--state-directory") }
        if let keyFile { try settings.set(key: "key_file", value: keyFile, at: "--key-file") }
        if let logLevel { try settings.set(key: "log_level", value: logLevel, at: "--log-level") }
        if checkConfig {
            // A config that is fine but a daemon that would authorize every caller as the wrong
            // user is not "OK": the check reports a user namespace too (an error, exit 1).
            try UserNamespace.requireInitialNamespace()
            print("configuration OK")
            return
        }
        // Two malloc arenas are plenty for two event loops and the commit thread; glibc's default
        // (eight per core) only adds resident memory.
        _ = glibcMallopt(mallocArenaMax, 2)
        // Run Swift concurrency (control requests, enroll at login) on NIO's event loops instead of
        // a second thread pool. Logins do not use it: they run on the loops as handlers.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let level = settings.logLevel
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, level: level) }
        let logger = Logger(label: "twofoldd")
        let environment = ProcessInfo.processInfo.environment
        do {
            // Before anything is opened: in a user namespace (PrivateUsers=yes) SO_PEERCRED would
            // show most callers as uid 65534, and every authorization would be about the wrong user.
            try UserNamespace.requireInitialNamespace()
            let daemon = try await Daemon(configuration: settings, environment: environment, logger: logger)
            try await daemon.run(logger: logger)
        } catch {
            logger.critical("twofoldd cannot run: \(error)")
            throw ExitCode(1)
        }
    }

    private func readFile(_ path: String, required: Bool) throws -> String? {
        guard let file = fopen(path, "r") else {
            if !required && errno == ENOENT { return nil }
            throw ValidationError("cannot read config file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
            if bytes.count > 1 << 20 { throw ValidationError("config file \(path) is larger than 1 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
