import ArgumentParser
import Foundation
import Logging
import TwofoldDaemon

/// `twofoldd restore`: a single host's store from a backup, or the restored PostgreSQL database
/// made safe (README, "Restoring"; twofoldd(8), RESTORING).
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofoldd restore",
        abstract: "Restore the store from a backup, with no twofoldd running, and make it safe to use.",
        discussion: """
            The backup is checked first (integrity, schema, the key) on a private copy; a bad one changes nothing (exit 2). \
            Every TOTP watermark is raised to the current step and every HOTP counter moved past the look-ahead window, so \
            no code used after the backup works again. Revocations after the backup found in --audit exports are re-applied; \
            whatever was revoked after the backup and is not in the audit you gave comes back. See twofoldd(8).
            """)

    @Option(name: .long, help: "The daemon's config file.")
    var config: String?

    @Option(name: .long, help: ArgumentHelp("The backup (twofoldctl backup; or a plain copy of the store with --taken-at).", valueName: "path"))
    var from: String?

    @Flag(name: .long, help: "Make the config's PostgreSQL database, which you restored, safe (with --taken-at).")
    var postgresql = false

    @Option(name: .long, help: ArgumentHelp("When the copy was taken (2026-01-31T12:00:00Z), for a copy without a manifest.", valueName: "time"))
    var takenAt: String?

    @Option(name: .long, help: ArgumentHelp("The state directory to restore into (default: the config's).", valueName: "path"))
    var stateDirectory: String?

    @Option(name: .long, help: ArgumentHelp("The key file the backup was sealed with (default: the config's).", valueName: "path"))
    var keyFile: String?

    @Option(name: .long, help: ArgumentHelp("An audit export since the backup: twofoldctl audit --json, or journalctl -o json (repeatable).",
                                            valueName: "file"))
    var audit: [String] = []

    @Flag(name: .long, help: "Invalidate every recovery code of the backup (users get new ones with twofoldctl recovery-codes).")
    var rotateRecoveryCodes = false

    @Flag(name: .long, help: "Restore over an existing database (kept as twofold.sqlite.before-restore-TIME).")
    var replace = false

    @Flag(name: .long, help: "Check the backup and report what would be done; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false

    mutating func run() async throws {
        var options = Restore.Options(configFile: config)
        (options.from, options.postgresql, options.takenAt) = (from, postgresql, takenAt)
        (options.stateDirectory, options.keyFile, options.audit) = (stateDirectory, keyFile, audit)
        (options.rotateRecoveryCodes, options.replace, options.dryRun) = (rotateRecoveryCodes, replace, dryRun)
        _ = try await OfflineCommand.run("restore", json: json, lines: \.lines) { [options] logger in
            try await Restore.run(options, environment: ProcessInfo.processInfo.environment, logger: logger)
        }
    }
}
