import Foundation
import Logging
import TwofoldCore
import TwofoldProtocol
import TwofoldSQLite
import TwofoldStore

/// `twofoldd restore`: brings back a single host's store from a backup (`--from`), or makes the
/// PostgreSQL database an admin restored (`--postgresql`) safe to serve, with no daemon running.
/// The backup is checked on a private copy before anything is changed; the copy gets the restore
/// rules (`RestoreRules`: replay watermarks, HOTP counters, recovery codes), the revocations of the
/// audit exports and an audit record of its own, and only then takes the database's place.
public enum Restore {
    public struct Options: Sendable {
        public var configFile: String?
        public var from: String?
        public var postgresql = false
        public var takenAt: String?
        public var stateDirectory: String?
        public var keyFile: String?
        public var audit: [String] = []
        public var rotateRecoveryCodes = false
        public var replace = false
        public var dryRun = false

        public init(configFile: String?) { self.configFile = configFile }
    }

    public static func run(_ options: Options, environment: [String: String], clock: any WallClock = SystemClock(),
                           logger: Logger) async throws -> RestoreReport {
        let configuration = try configuration(options)
        if try RestoreFiles.socketAnswers(configuration.socketPath) {
            throw ConfigurationError("a twofoldd answers on \(configuration.socketPath): stop it first "
                + "(systemctl stop twofoldd.socket twofoldd.service), then restore")
        }
        let takenAt = try options.takenAt.map(parseTime)
        let audit = try options.audit.map { (path: $0, entries: try AuditExport.read(path: $0)) }
        guard let keys = try DaemonKeys.load(configuration: configuration, environment: environment, create: false) else {
            throw ConfigurationError("the key file \(configuration.resolvedKeyFile) does not exist: restore it first from where you keep it, "
                + "apart from the backups (or give --key-file)")
        }
        let context = Context(configuration: configuration, keyring: keys.keyring, clock: clock, logger: logger, options: options,
                              takenAt: takenAt, audit: audit, environment: environment)
        if options.postgresql { return try await RestorePostgres.run(context) }
        guard let from = options.from else { throw ConfigurationError("give the backup with --from FILE (or --postgresql)") }
        return try await RestoreSQLite.run(from: from, context)
    }

    /// What both kinds of restore work with.
    struct Context: Sendable {
        let configuration: DaemonConfiguration
        let keyring: Keyring
        let clock: any WallClock
        let logger: Logger
        let options: Options
        let takenAt: Int64?
        let audit: [(path: String, entries: [AuditEntry])]
        let environment: [String: String]
    }

    private static func configuration(_ options: Options) throws -> DaemonConfiguration {
        guard (options.from != nil) != options.postgresql else {
            throw ConfigurationError("give either --from BACKUP (a single host's SQLite backup) or --postgresql")
        }
        var overrides: [ConfigurationSource.Override] = []
        if let directory = options.stateDirectory {
            overrides.append(.init(key: "state_directory", value: directory, flag: "--state-directory"))
        }
        if let keyFile = options.keyFile { overrides.append(.init(key: "key_file", value: keyFile, flag: "--key-file")) }
        let configuration = try ConfigurationSource(file: options.configFile, overrides: overrides).load().configuration
        guard configuration.fleet.role != .relay else {
            throw ConfigurationError("this twofoldd.conf is a relay's: a relay keeps no store; restore the tier's database on a server")
        }
        switch (configuration.store, options.postgresql) {
        case (.postgresql, false):
            throw ConfigurationError("this twofoldd.conf's store is PostgreSQL: restore the database (pg_restore, a base backup), "
                + "then run twofoldd restore --postgresql")
        case (.sqlite, true):
            throw ConfigurationError("--postgresql needs store = postgresql in twofoldd.conf")
        default:
            return configuration
        }
    }

    /// `--taken-at`: milliseconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise).
    static func parseTime(_ text: String) throws -> Int64 {
        if let millis = Int64(text), millis > 0 { return millis }
        let formatter = ISO8601DateFormatter()
        for candidate in [text, text.replacingOccurrences(of: " ", with: "T"), text.replacingOccurrences(of: " ", with: "T") + "Z"] {
            if let date = formatter.date(from: candidate) { return Int64(date.timeIntervalSince1970 * 1_000) }
        }
        throw ConfigurationError("--taken-at \(text) is not a time (2026-01-31T12:00:00Z, or milliseconds since the epoch)")
    }

    /// The rules, the revocations and the audit record, on the restored store (any backend).
    static func secure(_ store: any TwofoldStore, _ context: Context, into report: inout RestoreReport) async throws {
        let now = report.nowMillis
        let entries = context.audit.flatMap(\.entries)
        let uses = AuditRevocations.codeUses(in: entries, after: report.takenMillis)
        let rules = RestoreRules(nowMillis: now, hotpLookAhead: try await lookAhead(store, context.configuration),
                                 invalidateRecoveryCodes: context.options.rotateRecoveryCodes, usesAfter: uses)
        report.replay = try await store.secureRestoredStore(rules)
        report.auditFiles = context.audit.map(\.path)
        report.auditRecords = entries.count
        report.codeUsesFound = uses.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
        let revocations = AuditRevocations.find(in: entries, after: report.takenMillis)
        report.reapplied = try await RevocationReplay.apply(revocations, to: store, atMillis: now)
        let reason = "from \(report.source) taken \(UTCTime.text(report.takenMillis)): \(report.replay.watermarksRaised) watermarks raised, "
            + "\(report.replay.countersAdvanced) counters advanced, \(report.replay.recoverySetsInvalidated) recovery sets invalidated, "
            + "\(report.reapplied.filter(\.applied).count) revocations re-applied from \(report.auditFiles.count) audit files"
        _ = try await store.commit([.audit(AuditRecord(timeMillis: now, action: "restore", peerUID: getuid(), outcome: "success", reason: reason))])
    }

    /// The HOTP look-ahead the daemon will check with: its policy's (stored, else the config's).
    private static func lookAhead(_ store: any TwofoldStore, _ configuration: DaemonConfiguration) async throws -> Int {
        let stored = try await store.setting(PolicyHolder.settingKey).flatMap { try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array($0.utf8)) }
        let policy = try? Policy(stored ?? Policy.document(from: configuration))
        return (policy?.windowPolicy ?? WindowPolicy()).hotpLookAhead
    }
}
