import Logging
import TwofoldCore
import TwofoldCrypto
import TwofoldSystemd

/// Everything `twofoldd` can be configured with. Every key of the config file maps to one field;
/// `systemd/twofoldd.conf` (installed as /etc/twofold/twofoldd.conf) lists them with their defaults,
/// which a test holds to the code's.
public struct DaemonConfiguration: Sendable, Equatable {
    /// Unix socket to listen on (ignored when systemd passes a socket).
    public var socketPath = "/run/twofold/twofold.sock"
    /// Directory for the database and the key file.
    public var stateDirectory = "/var/lib/twofold"
    /// SQLite database path; default `<state_directory>/twofold.sqlite`.
    public var databasePath: String?
    /// Key file path; default `<state_directory>/twofold.key`, or the systemd credential `twofold.key` when present.
    /// It seals every new secret (and a rekey re-seals the others under it).
    public var keyFile: String?
    /// Previous key files (a rotation): they open what they sealed and never seal. Credentials
    /// named `twofold.previous-key` or `twofold.previous-key.*` are added to them.
    public var previousKeyFiles: [String] = []
    public var logLevel: Logger.Level = .info
    /// Where users, factors, policy and audit live: the embedded SQLite file, or a PostgreSQL database
    /// several daemons share.
    public var store: StoreKind = .sqlite
    /// The PostgreSQL database in libpq's URI form (`store = postgresql`); never holds a password.
    public var postgresqlURL: String?
    /// File whose first line is the PostgreSQL password; default: the systemd credential
    /// `postgresql-password` when present, else none (trust, peer or a client certificate).
    public var postgresqlPasswordFile: String?
    /// Bounds on reaching the database and on each statement, well under the PAM module's 10 s wait.
    public var postgresqlConnectTimeoutMillis = 2_000
    public var postgresqlStatementTimeoutMillis = 3_000
    /// Connections to PostgreSQL this daemon keeps at most (group commit makes a few enough).
    public var postgresqlPoolSize = 4
    /// Seconds a connection may stay silent (a person typing a code).
    public var idleTimeoutSeconds = 120
    /// Seconds a connection may last in all.
    public var connectionTimeoutSeconds = 300
    /// Connections served at once; further ones get a refusal verdict.
    public var maxConnections = 512
    /// Of those, the slots only root's connections (sshd, login, su, sudo) may take.
    public var reservedRootConnections = 128
    /// Connections one non-root uid may hold at once.
    public var maxConnectionsPerUID = 16
    /// Login dialogs in progress at once for one user, for one requesting user (PAM_RUSER), and from
    /// one remote host (PAM_RHOST).
    public var maxDialogsPerUser = 4
    public var maxDialogsPerRUser = 8
    public var maxDialogsPerRHost = 32
    /// Refused requests from one uid recorded one by one each minute; the rest as one aggregate record.
    public var refusalsAuditedPerMinute = 10
    /// Group whose members may run admin commands (root always may).
    public var adminGroup: String?
    /// Issuer shown in authenticator apps.
    public var issuer = "Twofold"
    /// Steps accepted on each side of the centre (±window).
    public var window = 1
    /// Most the learned drift may move the window centre, in steps.
    public var maxDrift = 3
    /// Consecutive failures before a lock.
    public var maxFailures = 10
    /// Delay after the first failure, doubling after each further one (milliseconds).
    public var throttleBaseDelayMillis: Int64 = 1_000
    /// Cap of that delay (milliseconds).
    public var throttleMaxDelayMillis: Int64 = 30_000
    /// How long a lock lasts before it clears by itself (seconds).
    public var lockSeconds = 900
    /// Who must use a second factor by default: `nobody`, `everyone`, or `groups` (with `required_groups`).
    public var require: RequirementRule = .nobody
    /// Groups whose members must use a second factor when `require = groups`.
    public var requiredGroups: [String] = []
    /// What a required user without an enrollment gets at login: `enroll`, `deny` or `grace`.
    public var unenrolled = "deny"
    /// Days of grace from when a rule first applied to a user (with `unenrolled = grace`).
    public var graceDays: Int?
    /// Digits, algorithm and period for new enrollments.
    public var newEnrollment = OTPParameters()
    /// Days audit records are kept; older ones are deleted (hourly, in small batches). 0 keeps them all.
    public var auditRetentionDays = 365
    /// The role in a fleet and how it reaches or serves the others (`role`, `listen`, `servers`, `tls_*`).
    public var fleet = FleetConfiguration()
    /// Where to serve the metrics over HTTP (`GET /metrics`) for a scraper; nil (the default): nowhere.
    public var metricsListen: ListenAddress?
    /// Delivered codes: the delivery service's socket, the codes' validity and digits, send limits.
    public var delivery = DeliveryConfiguration()
    /// FIDO2 security keys: the installation's relying-party id, the attestation CAs, the touch timeout.
    public var fido2 = Fido2Configuration()
    /// SSH public keys: the account sshd asks for them as, a relay's cache.
    public var sshKeys = SSHKeyConfiguration()

    public init() {}

    var admissionLimits: AdmissionControl.Limits {
        AdmissionControl.Limits(maxConnections: maxConnections, reservedForRoot: min(reservedRootConnections, maxConnections - 1),
                                perUID: maxConnectionsPerUID, perUser: maxDialogsPerUser, perRUser: maxDialogsPerRUser,
                                perRHost: maxDialogsPerRHost)
    }

    public var resolvedDatabasePath: String { databasePath ?? stateDirectory + "/twofold.sqlite" }
    public var resolvedKeyFile: String { keyFile ?? stateDirectory + "/twofold.key" }
}

/// Where the daemon keeps its state.
public enum StoreKind: String, Sendable, Equatable {
    case sqlite, postgresql
}

/// The default rule for who must use a second factor.
public enum RequirementRule: String, Sendable, Equatable, Codable {
    case nobody, everyone, groups
}

/// A configuration error, with the file, line and reason.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension DaemonConfiguration {
    /// Parses `key = value` lines (`#` starts a comment) over the defaults. Unknown keys,
    /// repeated keys and bad values are errors naming the line.
    public static func parse(_ text: String, source: String = "twofoldd.conf", over base: DaemonConfiguration = DaemonConfiguration()) throws -> DaemonConfiguration {
        var config = base
        let seen = try ConfigFile.parse(text, source: source, comments: .hash, error: ConfigurationError.init) { key, value, at in
            try config.set(key: key, value: value, at: at)
        }
        try config.checkStoreKeys(source: source)
        let storeKeysSet = config.databasePath != nil || config.postgresqlURL != nil || config.postgresqlPasswordFile != nil
            || config.keyFile != nil || !config.previousKeyFiles.isEmpty
        try config.fleet.check(source: source, store: config.store, storeKeysSet: storeKeysSet)
        if config.fleet.role == .relay, let key = seen.first(where: DeliveryConfiguration.isKey) {
            throw ConfigurationError("\(source): \(key) does not belong to role = relay: the servers send delivered codes; a relay sends none")
        }
        if config.fleet.role == .relay, let key = seen.first(where: { $0.hasPrefix("fido2_") }) {
            throw ConfigurationError("\(source): \(key) does not belong to role = relay: the servers check keys; a relay only passes the key step on")
        }
        do { try config.fido2.check() } catch let error as ConfigurationError { throw ConfigurationError("\(source): \(error.message)") }
        return config
    }

    /// The store keys as a whole: PostgreSQL needs its URL, and PostgreSQL keys with the SQLite store
    /// are a mistake worth stopping for (the admin thinks the daemon shares a database).
    func checkStoreKeys(source: String) throws {
        switch store {
        case .postgresql:
            guard postgresqlURL != nil else { throw ConfigurationError("\(source): store = postgresql needs postgresql_url") }
            if databasePath != nil { throw ConfigurationError("\(source): database is the SQLite file; with store = postgresql remove it") }
        case .sqlite:
            if postgresqlURL != nil || postgresqlPasswordFile != nil {
                throw ConfigurationError("\(source): postgresql_url or postgresql_password_file is set but store = sqlite; set store = postgresql")
            }
        }
    }

    /// Sets one key (used by the parser and by command-line flags).
    public mutating func set(key: String, value: String, at: String) throws {
        func int(_ range: ClosedRange<Int>) throws -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw ConfigurationError("\(at): '\(key)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func path() throws -> String {
            guard value.hasPrefix("/") || value.hasPrefix(".") else { throw ConfigurationError("\(at): '\(key)' must be a path") }
            return value
        }
        switch key {
        case "socket": socketPath = try path()
        case "state_directory": stateDirectory = try path()
        case "database": databasePath = try path()
        case "key_file": keyFile = try path()
        case "store":
            guard let kind = StoreKind(rawValue: value.lowercased()) else { throw ConfigurationError("\(at): store must be sqlite or postgresql") }
            store = kind
        case "postgresql_url" where value.isEmpty: postgresqlURL = nil
        case "postgresql_url":
            // Checked as a whole (host, sslmode, no password) when the store is opened or checked.
            guard value.hasPrefix("postgresql://") || value.hasPrefix("postgres://") else {
                throw ConfigurationError("\(at): postgresql_url must be a URI such as postgresql://twofold@db1:5432/twofold?sslmode=verify-full")
            }
            postgresqlURL = value
        case "postgresql_password_file": postgresqlPasswordFile = value.isEmpty ? nil : try path()
        case "postgresql_connect_timeout_ms": postgresqlConnectTimeoutMillis = try int(100...8_000)
        case "postgresql_statement_timeout_ms": postgresqlStatementTimeoutMillis = try int(100...8_000)
        case "postgresql_pool_size": postgresqlPoolSize = try int(1...64)
        case "previous_key_files":
            previousKeyFiles = value.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
            for file in previousKeyFiles where !(file.hasPrefix("/") || file.hasPrefix(".")) {
                throw ConfigurationError("\(at): '\(key)' must be a comma-separated list of paths; '\(file)' is not a path")
            }
        case "log_level":
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigurationError("\(at): log_level must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = level
        case "idle_timeout": idleTimeoutSeconds = try int(1...3600)
        case "connection_timeout": connectionTimeoutSeconds = try int(1...86_400)
        case "max_connections": maxConnections = try int(2...65_536)
        case "reserved_root_connections": reservedRootConnections = try int(1...65_535)
        case "max_connections_per_uid": maxConnectionsPerUID = try int(1...65_536)
        case "max_dialogs_per_user": maxDialogsPerUser = try int(1...1_000)
        case "max_dialogs_per_ruser": maxDialogsPerRUser = try int(1...1_000)
        case "max_dialogs_per_rhost": maxDialogsPerRHost = try int(1...10_000)
        case "refusals_audited_per_minute": refusalsAuditedPerMinute = try int(1...10_000)
        case "admin_group": adminGroup = value.isEmpty ? nil : value
        case "issuer":
            guard !value.isEmpty, value.count <= 64, !value.contains(":") else { throw ConfigurationError("\(at): issuer must be 1 to 64 characters without ':'") }
            issuer = value
        case "window": window = try int(0...10)
        case "max_drift": maxDrift = try int(0...20)
        case "max_failures": maxFailures = try int(1...100)
        case "throttle_delay_ms": throttleBaseDelayMillis = Int64(try int(0...60_000))
        case "throttle_max_delay_ms": throttleMaxDelayMillis = Int64(try int(0...600_000))
        case "lock_seconds": lockSeconds = try int(1...86_400 * 30)
        case "require":
            guard let rule = RequirementRule(rawValue: value.lowercased()) else { throw ConfigurationError("\(at): require must be nobody, everyone or groups") }
            require = rule
        case "required_groups":
            requiredGroups = value.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
        case "unenrolled":
            guard ["enroll", "deny", "grace"].contains(value.lowercased()) else { throw ConfigurationError("\(at): unenrolled must be enroll, deny or grace") }
            unenrolled = value.lowercased()
        case "grace_days": graceDays = try int(0...3650)
        case "audit_retention_days": auditRetentionDays = try int(0...36_500)
        case "metrics_listen" where value.isEmpty: metricsListen = nil
        case "metrics_listen":
            guard let address = ListenAddress(value) else {
                throw ConfigurationError("\(at): metrics_listen must be ADDRESS:PORT with an IP address, e.g. 127.0.0.1:9464 or [::1]:9464")
            }
            metricsListen = address
        case "digits": newEnrollment.digits = try int(6...8)
        case "period": newEnrollment.period = try int(15...120)
        case "algorithm":
            guard let alg = HashAlgorithm(rawValue: value.uppercased().filter { $0 != "-" }) else { throw ConfigurationError("\(at): algorithm must be SHA1, SHA256 or SHA512") }
            newEnrollment.algorithm = alg
        default:
            guard try fleet.set(key: key, value: value, at: at, path: path, int: int)
                    || delivery.set(key: key, value: value, at: at, path: path, int: int)
                    || fido2.set(key: key, value: value, at: at, path: path, int: int)
                    || sshKeys.set(key: key, value: value, at: at, path: path, int: int) else {
                throw ConfigurationError("\(at): unknown key '\(key)'")
            }
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring { ConfigFile.trimmed(self) }
}

