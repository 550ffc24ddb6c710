import Testing
@testable import TwofoldDaemon
import TwofoldProtocol

/// The fleet keys of twofoldd.conf, host patterns and the fleet fields of the policy.
@Suite("fleet configuration and host patterns")
struct FleetConfigurationTests {
    static let relay = """
        role = relay
        servers = tier-1.example.com:7443, [2001:db8::1]:7443
        tls_certificate = /etc/twofold/tls/host.pem
        tls_key = /etc/twofold/tls/host.key
        tls_server_ca = /etc/twofold/tls/server-ca.pem
        """

    @Test("a relay's keys: its servers in order, IPv6 in brackets")
    func relayKeys() throws {
        let config = try DaemonConfiguration.parse(Self.relay)
        #expect(config.fleet.role == .relay)
        #expect(config.fleet.servers == [TierAddress(host: "tier-1.example.com", port: 7443), TierAddress(host: "2001:db8::1", port: 7443)])
        #expect(config.fleet.servers.map(\.description) == ["tier-1.example.com:7443", "[2001:db8::1]:7443"])
    }

    @Test("each role gets what it needs and nothing of another's", arguments: [
        (relay + "\nstore = postgresql\npostgresql_url = postgresql://t@db/t", "t.conf: a relay holds no store: remove store, database and the postgresql_* keys"),
        (relay + "\nkey_file = /var/lib/twofold/twofold.key", "t.conf: a relay holds no store: remove store, database and the postgresql_* keys"),
        (relay + "\ndelivery_limit_per_user = 3", "t.conf: delivery_limit_per_user does not belong to role = relay: the servers send delivered codes; a relay sends none"),
        (relay + "\nlisten = 0.0.0.0:7443", "t.conf: listen does not belong to role = relay: relays take no connections from other hosts"),
        ("role = relay\ntls_certificate = /a\ntls_key = /b\ntls_server_ca = /c", "t.conf: role = relay needs servers"),
        ("role = server\nlisten = 0.0.0.0:7443\ntls_certificate = /a\ntls_key = /b", "t.conf: role = server needs tls_client_ca (the CA of host certificates)"),
        ("role = server\nlisten = 0.0.0.0:7443\ntls_certificate = /a\ntls_key = /b\ntls_client_ca = /c\ntls_server_ca = /d",
         "t.conf: tls_server_ca does not belong to role = server: a server trusts host certificates, through tls_client_ca"),
        ("listen = 0.0.0.0:7443", "t.conf: listen, servers and the tls_* keys need role = server or role = relay"),
        ("role = relay\nservers = tier-1", "t.conf:2: servers must be a comma-separated list of NAME:PORT, e.g. tier-1.example.com:7443, tier-2.example.com:7443"),
        ("role = relay\nservers = tier-1:0", "t.conf:2: servers must be a comma-separated list of NAME:PORT, e.g. tier-1.example.com:7443, tier-2.example.com:7443"),
        ("role = leader", "t.conf:1: role must be single, server or relay"),
        ("role = server\nlisten = 0.0.0.0:7443\ntls_certificate = /a\ntls_key = /b\ntls_client_ca = /c\nmax_connections_per_host = 0",
         "t.conf:6: 'max_connections_per_host' must be a whole number from 1 to 65536"),
    ] as [(String, String)])
    func roleChecks(text: String, error: String) {
        #expect(throws: ConfigurationError(error)) { try DaemonConfiguration.parse(text, source: "t.conf") }
    }

    @Test("host patterns: * and ?, case folded, no partial matches")
    func patterns() {
        #expect(HostPattern.matches("bastion-*", "bastion-1"))
        #expect(HostPattern.matches("bastion-*", "Bastion-12.example.com"))
        #expect(HostPattern.matches("bastion-*", "bastion-"))
        #expect(!HostPattern.matches("bastion-*", "x-bastion-1"))
        #expect(HostPattern.matches("web-??", "web-01"))
        #expect(!HostPattern.matches("web-??", "web-1"))
        #expect(HostPattern.matches("*.example.com", "a.b.example.com"))
        #expect(!HostPattern.matches("*.example.com", "example.com"))
        #expect(HostPattern.matches("*a*a*a*a*a*b", String(repeating: "a", count: 30) + "b"))
        #expect(!HostPattern.matches("*a*a*a*a*a*b", String(repeating: "a", count: 200)))
        #expect(!HostPattern.isValid("bad host") && !HostPattern.isValid("") && HostPattern.isValid("build-*.example.com"))
    }

    @Test("the host level of the chain: the host's own name before the longest pattern that matches")
    func hostRules() throws {
        var document = PolicyDocument(require: "everyone")
        document.hosts = ["build-*": "optional", "build-secure-*": "required", "build-secure-7": "optional"]
        let policy = try Policy(document)
        #expect(policy.requirement(user: "u", service: "sshd", host: "build-3", override: .policy).required == false)
        #expect(policy.requirement(user: "u", service: "sshd", host: "build-secure-1", override: .policy).required == true)
        #expect(policy.requirement(user: "u", service: "sshd", host: "build-secure-7", override: .policy).required == false)
        #expect(policy.requirement(user: "u", service: "sshd", host: "web-1", override: .policy).required == true)
        let decision = policy.decide(user: "u", service: "sshd", host: "build-secure-1", override: .policy)
        #expect(decision.level == .host && decision.because == "host build-secure-1 (build-secure-*): required")
    }

    @Test("admins, admin hosts and enroll hosts: none by default; checked")
    func fleetFields() throws {
        let none = try Policy(PolicyDocument())
        #expect(!none.admitsAdmin("root", on: "bastion-1") && !none.admitsEnrollment(on: "bastion-1"))
        let open = try Policy(PolicyDocument(admins: ["alice"], adminHosts: ["bastion-*"], enrollHosts: ["bastion-*", "jump"]))
        #expect(open.admitsAdmin("alice", on: "bastion-2"))
        #expect(!open.admitsAdmin("alice", on: "web-1"))
        #expect(!open.admitsAdmin("bob", on: "bastion-2"))
        #expect(open.admitsEnrollment(on: "jump") && !open.admitsEnrollment(on: "jumper"))
        #expect(throws: ConfigurationError.self) { try Policy(PolicyDocument(adminHosts: ["bad host"])) }
        #expect(throws: ConfigurationError.self) { try Policy(PolicyDocument(adminSessionMinutes: 0)) }
        // A document stored before these fields decodes with their defaults.
        let old = #"{"require":"nobody","requiredGroups":[],"services":{},"unenrolled":"deny","selfEnrollment":true,"allowDisable":true,"enrollmentCodes":1,"digits":6,"algorithm":"SHA1","period":30,"window":1,"maxDrift":3,"maxFailures":10,"throttleDelayMillis":1000,"throttleMaxDelayMillis":30000,"lockSeconds":900}"#
        let decoded = try ControlCodec.decodeJSON(PolicyDocument.self, from: Array(old.utf8))
        #expect(decoded.admins.isEmpty && decoded.adminHosts.isEmpty && decoded.enrollHosts.isEmpty && decoded.adminSessionMinutes == 10)
    }

    @Test("what a relay reports of its emergency codes is kept only in the audit's shape")
    func relayReports() {
        let now: Int64 = 1_800_000_000_000
        func entry(user: String? = "root", reason: String? = "emergency code used", outcome: String = "success", action: String = "break-glass",
                   time: Int64 = 1_800_000_000_000) -> AuditEntry {
            AuditEntry(timeMillis: time, action: action, user: user, service: "sshd", rhost: nil, tty: nil, peerUID: 0, outcome: outcome, reason: reason)
        }
        #expect(ControlService.isPlausibleReport(entry(), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(outcome: "admin"), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(action: "verify"), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(user: "ro\u{1B}[2Jot"), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(reason: String(repeating: "x", count: 257)), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(time: now + 3_600_000), nowMillis: now))
        #expect(!ControlService.isPlausibleReport(entry(time: 0), nowMillis: now))
    }
}
