import Foundation
import Logging
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

/// `twofoldd move-in`: copies a single host's store into the tier's, on a server, with the
/// server's configuration (the tier's store and keyring, opened as the daemon opens them; the
/// daemon may be running). Each user is moved in a transaction of its own, so a login through
/// the tier meanwhile sees the user either not yet moved or whole. Users enrolled differently in
/// the tier are reported and left alone while the rest move; running it again changes nothing
/// but what the host did since (later replay state, codes used, new audit records).
public enum MoveIn {
    public struct Options: Sendable {
        public var configFile: String?
        public var host: String
        public var database: String
        public var keyFile: String
        public var previousKeyFiles: [String]
        public var dryRun: Bool

        public init(configFile: String?, host: String, database: String, keyFile: String, previousKeyFiles: [String], dryRun: Bool) {
            self.configFile = configFile
            self.host = host
            self.database = database
            self.keyFile = keyFile
            self.previousKeyFiles = previousKeyFiles
            self.dryRun = dryRun
        }
    }

    static let pageSize = 500

    public static func run(_ options: Options, environment: [String: String], logger: Logger) async throws -> MoveInReport {
        guard let name = HostIdentity.normalizedName(options.host) else { throw ConfigurationError("--host \(options.host) is not a host name") }
        let configuration = try ConfigurationSource(file: options.configFile).load().configuration
        guard configuration.fleet.role != .relay else {
            throw ConfigurationError("move-in runs on a server of the tier, with its twofoldd.conf; this one is a relay's")
        }
        guard let keys = try DaemonKeys.load(configuration: configuration, environment: environment, create: false) else {
            throw ConfigurationError("the tier's key is neither \(configuration.resolvedKeyFile) nor a systemd credential: run move-in "
                + "with the server's credentials (twofoldd(8), MOVING A HOST IN)")
        }
        let host = try await HostStore.open(database: options.database, keyFile: options.keyFile,
                                            previousKeyFiles: options.previousKeyFiles, logger: logger)
        let tier: any TwofoldStore
        do {
            tier = try await StoreFactory.makeStore(configuration: configuration, keyring: keys.keyring, environment: environment, logger: logger,
                                                    observer: StoreObserver())
        } catch {
            await host.close()
            throw error
        }
        var report = MoveInReport(host: name, dryRun: options.dryRun)
        do {
            try await move(from: host, to: tier, configuration: configuration, into: &report)
        } catch {
            await host.close()
            try? await tier.close()
            throw error
        }
        await host.close()
        try await tier.close()
        return report
    }

    private static func move(from host: HostStore, to tier: any TwofoldStore, configuration: DaemonConfiguration,
                             into report: inout MoveInReport) async throws {
        try await moveUsers(from: host, to: tier, into: &report)
        try await copyAudit(from: host.store, to: tier, into: &report)
        let tierPolicy = try await tier.setting(PolicyHolder.settingKey)
        let tierDocument = tierPolicy.flatMap { try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array($0.utf8)) }
            ?? Policy.document(from: configuration)
        PolicyComparison.compare(host: try await host.store.setting(PolicyHolder.settingKey), tier: tierDocument, into: &report)
        report.hostRegistered = try await tier.hostCertificates(host: report.host).contains { $0.revokedMillis == nil }
        if !report.dryRun { try await audit(report, in: tier) }
    }

    /// Every user of the host, a page at a time.
    private static func moveUsers(from host: HostStore, to tier: any TwofoldStore, into report: inout MoveInReport) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var after: String?
        while true {
            let page = try await host.users(after: after, limit: pageSize, atMillis: now)
            guard let last = page.last else { return }
            for user in page { try await moveUser(user, to: tier, into: &report) }
            after = last.record.name
        }
    }

    private static func moveUser(_ user: MovedUser, to tier: any TwofoldStore, into report: inout MoveInReport) async throws {
        let record = user.record
        if record.pendingFactor != nil { report.pendingNotMoved.append(record.name) }
        guard hasState(record) || !user.sshKeys.isEmpty else { return }
        switch try await tier.moveIn(user, dryRun: report.dryRun) {
        case .moved:
            report.moved.append(record.name)
            if !user.recoveryCodes.isEmpty {
                report.recoveryCodeSets += 1
                report.recoveryCodes += user.recoveryCodes.count
            }
        case .alreadyMoved(let updated):
            report.alreadyMoved.append(record.name)
            report.updated += updated
        case .conflict(let reason):
            report.conflicts.append(MoveInReport.Conflict(user: record.name, reason: reason))
        }
    }

    /// Whether the host knows anything of the user worth moving beyond a pending enrollment.
    static func hasState(_ record: UserRecord) -> Bool {
        !record.factors.isEmpty || !record.keys.isEmpty || record.requirement != .policy || record.factorKinds != nil || record.firstRequiredMillis != nil
            || record.sshKeyRule != nil || record.throttle != ThrottleState()
    }

    /// The host's audit records after those an earlier move copied, with the host's name, a page
    /// per transaction (each moves the host's mark, so an interrupted copy resumes where it stopped).
    private static func copyAudit(from host: any TwofoldStore, to tier: any TwofoldStore, into report: inout MoveInReport) async throws {
        var mark = try await tier.movedAuditMark(host: report.host)
        while true {
            let page = try await host.auditRecords(after: mark ?? 0, limit: pageSize)
            guard let last = page.last?.id else { return }
            let records = page.map { record in
                var copied = record
                copied.id = nil
                // The host's own name for itself (if any) is the machine's; the fleet knows it by NAME.
                copied.host = report.host
                return copied
            }
            if !report.dryRun { try await tier.appendMovedAudit(records, host: report.host, through: last, previous: mark) }
            report.auditRecords += records.count
            mark = last
        }
    }

    /// The move itself, in the tier's audit log.
    private static func audit(_ report: MoveInReport, in tier: any TwofoldStore) async throws {
        let reason = "\(report.moved.count) users moved, \(report.alreadyMoved.count) already moved, \(report.conflicts.count) in conflict, "
            + "\(report.auditRecords) audit records copied; policy \(report.policy)"
        let record = AuditRecord(timeMillis: Int64(Date().timeIntervalSince1970 * 1000), action: "move-in",
                                 outcome: report.conflicts.isEmpty ? "success" : "partial", reason: reason, host: report.host)
        _ = try await tier.commit([.audit(record)])
    }
}
