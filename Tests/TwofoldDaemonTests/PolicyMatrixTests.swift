import Foundation
@testable import TwofoldSQLite
import TwofoldStore
import Logging
import Testing
import TwofoldTestSupport
@testable import TwofoldDaemon
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol

/// The policy matrix: required/optional (by default rule and by service rule) × enrolled or not ×
/// what an unenrolled required user gets (deny, enroll at login, grace before and after its end)
/// × PAM service → what a login starts with. Real SQLite store, injected clock.
@Suite("policy matrix")
struct PolicyMatrixTests {
    enum Mode: String, CaseIterable { case deny, enroll, graceBefore, graceAfter }
    enum Expected: Equatable { case askCode, ignore, denied, enroll, grace }

    /// Two policies: "sshd required, nobody else" and "everyone, except the console (login) optional".
    static let variants: [(name: String, require: String, services: [String: String])] = [
        ("service rule makes sshd required", "nobody", ["sshd": "required"]),
        ("default rule with login optional", "everyone", ["login": "optional"]),
    ]

    static let cases: [(variant: Int, service: String, enrolled: Bool, mode: Mode)] =
        (0..<2).flatMap { v in ["sshd", "login"].flatMap { s in [true, false].flatMap { e in Mode.allCases.map { (v, s, e, $0) } } } }

    static func expected(variant: Int, service: String, enrolled: Bool, mode: Mode) -> Expected {
        if enrolled { return .askCode }
        let required = variant == 0 ? service == "sshd" : service != "login"
        guard required else { return .ignore }
        switch mode {
        case .deny: return .denied
        case .enroll: return .enroll
        case .graceBefore: return .grace
        case .graceAfter: return .denied
        }
    }

    @Test("each combination gives its verdict", arguments: cases.indices)
    func matrix(index: Int) async throws {
        let (variant, service, enrolled, mode) = Self.cases[index]
        let v = Self.variants[variant]
        let document = PolicyDocument(require: v.require, services: v.services,
                                      unenrolled: mode == .deny ? "deny" : mode == .enroll ? "enroll" : "grace",
                                      graceDays: mode == .graceBefore || mode == .graceAfter ? 7 : nil)
        let world = try await InProcessDaemon(policy: document)
        defer { world.close() }
        if enrolled { try await world.enroll("ursula") }
        let context = LoginContext(user: "ursula", service: service, peer: PeerCredentials(pid: 1, uid: 0, gid: 0))
        if mode == .graceAfter {
            // The rule first applies now; eight days later the seven days of grace are over.
            _ = await world.authenticator.begin(context)
            world.clock.advance(millis: 8 * 86_400_000)
        } else if mode == .graceBefore {
            _ = await world.authenticator.begin(context)
            world.clock.advance(millis: 6 * 86_400_000)
        }
        let start = await world.authenticator.begin(context)
        let got: Expected = switch start {
        case .askCode: .askCode
        case .ignore: .ignore
        case .denied: .denied
        case .enroll: .enroll
        case .grace: .grace
        case .locked, .unavailable: .denied
        }
        #expect(got == Self.expected(variant: variant, service: service, enrolled: enrolled, mode: mode),
                "\(v.name), service \(service), enrolled \(enrolled), \(mode): \(start)")
        if case .grace(let notice) = start { #expect(notice.contains("in 1 day"), "\(notice)") }
    }

    @Test("per-user overrides come before service and default rules")
    func overrides() async throws {
        let world = try await InProcessDaemon(policy: PolicyDocument(require: "everyone", services: ["sshd": "required"]))
        defer { world.close() }
        let policy = world.policy.current
        #expect(policy.requirement(user: "a", service: "sshd", override: .exempt).required == false)
        #expect(policy.requirement(user: "a", service: "login", override: .required).required == true)
        #expect(policy.requirement(user: "a", service: "login", override: .policy).required == true)
        let groups = try Policy(PolicyDocument(require: "groups", requiredGroups: ["wheel"]))
        #expect(groups.requirement(user: "a", service: nil, override: .policy, groups: { _ in ["wheel", "users"] }).required)
        #expect(!groups.requirement(user: "a", service: nil, override: .policy, groups: { _ in ["users"] }).required)
    }

    @Test("a grace deadline ends the grace even when days remain")
    func graceDeadline() async throws {
        let start: Int64 = 1_800_000_000_000
        let document = PolicyDocument(require: "everyone", unenrolled: "grace", graceDays: 30, graceDeadlineMillis: start + 2 * 86_400_000)
        let world = try await InProcessDaemon(policy: document, now: start)
        defer { world.close() }
        let context = LoginContext(user: "vera", service: "sshd", peer: PeerCredentials(pid: 1, uid: 0, gid: 0))
        guard case .grace = await world.authenticator.begin(context) else { Issue.record("expected grace"); return }
        world.clock.advance(millis: 3 * 86_400_000)
        guard case .denied = await world.authenticator.begin(context) else { Issue.record("expected denied after the deadline"); return }
    }

    @Test("invalid policies are refused with the field named", arguments: [
        PolicyDocument(require: "sometimes"),
        PolicyDocument(require: "groups"),
        PolicyDocument(unenrolled: "grace"),
        PolicyDocument(services: ["sshd": "maybe"]),
        PolicyDocument(enrollmentCodes: 3),
        PolicyDocument(digits: 9),
        PolicyDocument(maxFailures: 1000),
    ])
    func invalid(document: PolicyDocument) {
        #expect(throws: ConfigurationError.self) { try Policy(document) }
    }
}

/// An authenticator over a real SQLite store in a temp dir, with a manual clock.
final class InProcessDaemon: @unchecked Sendable {
    let store: SQLiteStore
    let clock: ManualClock
    let policy: PolicyHolder
    let authenticator: Authenticator
    let keys: SealingKeys
    /// What the authenticator logged.
    let log = RecordingLogHandler.Records()

    init(policy document: PolicyDocument, now: Int64 = 1_800_000_000_000) async throws {
        let directory = try makeTemporaryDirectory("pol")
        keys = try SealingKeys.loadOrCreate(keyFile: directory + "/key")
        store = try SQLiteStore(path: directory + "/db.sqlite", keys: keys)
        clock = ManualClock(millis: now)
        policy = PolicyHolder(initial: try Policy(document), store: store)
        authenticator = Authenticator(store: store, clock: clock, policy: policy, recoveryPepper: keys.recoveryPepper, metrics: DaemonMetrics(),
                                      logger: Logger(label: "test", factory: { [log] _ in RecordingLogHandler(records: log) }))
    }

    func enroll(_ user: String) async throws {
        try await store.importEnrollment(EnrollmentImportRecord(user: user, factor: FactorName.first, secret: try OTPSecret.generate(),
                                                                parameters: OTPParameters(), verify: VerifyState(), recoveryCodes: [],
                                                                atMillis: clock.nowMillis()))
    }

    func close() {
        let store = self.store
        Task { try? await store.close() }
    }
}

/// A log handler that keeps what it is given, for tests (swift-log's in-memory pattern).
struct RecordingLogHandler: LogHandler {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    final class Records: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: [Entry] = []
        var entries: [Entry] { lock.withLock { stored } }
        func append(_ entry: Entry) { lock.withLock { stored.append(entry) } }
    }

    let records: Records
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        records.append(Entry(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}

@Suite("audit records in the log")
struct AuditLogTests {
    @Test("each audit record is logged once its commit is durable; after a failed commit it is logged as not recorded")
    func auditLinesFollowTheCommit() async throws {
        let world = try await InProcessDaemon(policy: PolicyDocument(require: "nobody"))
        defer { world.close() }
        try await world.enroll("mia")
        let context = LoginContext(user: "mia", service: "sshd", rhost: "10.0.0.7", peer: PeerCredentials(pid: 1, uid: 0, gid: 0))
        guard case .askCode(let record) = await world.authenticator.begin(context) else {
            Issue.record("expected a code prompt")
            return
        }
        #expect(await world.authenticator.check(answer: "000000x", record: record, context: context) == .failure)
        let lines = world.log.entries.filter { $0.message == "verify" }
        #expect(lines.count == 1)
        #expect(lines.first?.level == .info)
        #expect(lines.first?.metadata["outcome"] == "failure")
        #expect(lines.first?.metadata["user"] == "mia")
        #expect(lines.first?.metadata["rhost"] == "10.0.0.7")
        #expect(lines.first?.metadata["recorded"] == nil)
        #expect(try await world.store.audit(AuditQuery(user: "mia")).map(\.outcome) == ["failure"])

        // Make the audit insert fail: the failure is not recorded, and the log says so.
        try world.store.testingExecute("CREATE TRIGGER boom BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'boom'); END")
        #expect(await world.authenticator.check(answer: "000000x", record: record, context: context) == .unavailable)
        let after = world.log.entries.filter { $0.message == "verify" }
        #expect(after.count == 2)
        #expect(after.last?.level == .error)
        #expect(after.last?.metadata["recorded"] == "no")
        #expect(world.log.entries.contains { $0.message == "store commit failed" })
    }
}
