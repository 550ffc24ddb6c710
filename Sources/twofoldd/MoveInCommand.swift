import ArgumentParser
import Foundation
import Logging
import TwofoldDaemon

/// `twofoldd move-in`: a single host's store into the tier's (README, "Moving a host in").
struct MoveInCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofoldd move-in",
        abstract: "Copy a single host's store (a copy of its database and key file) into the tier's store, on a server.",
        discussion: """
            Users, their factors, replay and throttle state, overrides, recovery codes (which keep working) and the host's audit \
            records move into the store of --config's twofoldd.conf; the host's stored policy is compared with the tier's, not merged. \
            Running it again changes nothing already moved. A user enrolled differently in the tier is reported and not touched, \
            and the exit status is then 1 (the others are moved). See twofoldd(8).
            """)

    @Option(name: .long, help: "The tier server's config file.")
    var config: String?

    @Option(name: .long, help: ArgumentHelp("The host's name, as its relay will be registered (audit records get it).", valueName: "name"))
    var host: String

    @Option(name: .long, help: ArgumentHelp("A copy of the host's SQLite database (left unchanged).", valueName: "path"))
    var database: String

    @Option(name: .long, help: ArgumentHelp("A copy of the host's key file.", valueName: "path"))
    var keyFile: String

    @Option(name: .long, help: ArgumentHelp("A previous key of the host, during a rotation (repeatable).", valueName: "path"))
    var previousKeyFile: [String] = []

    @Flag(name: .long, help: "Report what would be moved; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false

    mutating func run() async throws {
        let options = MoveIn.Options(configFile: config, host: host, database: database, keyFile: keyFile,
                                     previousKeyFiles: previousKeyFile, dryRun: dryRun)
        let report = try await OfflineCommand.run("move-in", json: json, lines: \.lines) { logger in
            try await MoveIn.run(options, environment: ProcessInfo.processInfo.environment, logger: logger)
        }
        if !report.conflicts.isEmpty { throw ExitCode(1) }
    }
}
