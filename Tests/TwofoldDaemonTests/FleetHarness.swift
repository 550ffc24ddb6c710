import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The suites that run many daemons on the shared PostgreSQL cluster at once (fleets, races of
/// 1,000 users, move-in), one after another: together they kept the shared cluster from answering
/// the store tests for 20 s and more on two cores.
@Suite(.serialized) struct HeavyDaemonSuites {}

/// The fleet's certificates, made by the shipped scripts/fleet-ca.sh: a server CA and a host CA.
final class FleetCA {
    let directory: String

    init() throws {
        directory = try makeTemporaryDirectory("ca")
        try script("init")
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    var serverCA: String { directory + "/server-ca.pem" }
    var hostCA: String { directory + "/host-ca.pem" }

    /// A server certificate for `localhost` (and 127.0.0.1) in its own folder, named `name`.
    func server(_ name: String) throws -> (certificate: String, key: String) {
        try script("server", "localhost", "127.0.0.1")
        return try keep("servers/localhost", as: "servers/\(name)")
    }

    /// A host certificate whose SAN is `name`.
    func host(_ name: String) throws -> (certificate: String, key: String) {
        try script("host", name)
        return (directory + "/hosts/\(name).pem", directory + "/hosts/\(name).key")
    }

    /// A certificate signed by the host CA that names the server (`localhost`): a host posing as a server.
    func hostPosingAsServer() throws -> (certificate: String, key: String) {
        try script("host", "localhost")
        return try keep("hosts/localhost", as: "hosts/posing-as-server")
    }

    func pem(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    private func keep(_ from: String, as name: String) throws -> (certificate: String, key: String) {
        for ext in ["pem", "key"] {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name).\(ext)")
            try FileManager.default.moveItem(atPath: "\(directory)/\(from).\(ext)", toPath: "\(directory)/\(name).\(ext)")
        }
        return ("\(directory)/\(name).pem", "\(directory)/\(name).key")
    }

    private func script(_ arguments: String...) throws {
        let result = try run(["/bin/bash", TestPaths.root + "/scripts/fleet-ca.sh", arguments[0], directory] + arguments.dropFirst())
        guard result.status == 0 else { throw HarnessError("fleet-ca.sh \(arguments): \(result.output)") }
    }
}

/// A tier (servers on one PostgreSQL database, sharing a key) and relays, each a real twofoldd with
/// its own directory, socket and certificate.
final class Fleet: @unchecked Sendable {
    let cluster: PostgresCluster
    let key: SharedKey
    let ca: FleetCA
    let database: String
    private(set) var servers: [DaemonProcess] = []
    private(set) var ports: [Int] = []
    private(set) var relays: [String: DaemonProcess] = [:]

    /// `privateCluster`: a PostgreSQL cluster of the fleet's own, for tests that stop it.
    init(servers count: Int, serverConfig: String = "", privateCluster: Bool = false) throws {
        cluster = privateCluster ? try PostgresCluster.startPrivate() : try PostgresCluster()
        key = try SharedKey()
        ca = try FleetCA()
        database = privateCluster ? "twofold" : try cluster.createScratchDatabase()
        for index in 0..<count {
            let port = try PostgresCluster.freePort()
            let tls = try ca.server("tier-\(index)")
            ports.append(port)
            servers.append(try DaemonProcess.onPostgres(cluster, database: database, keyFile: key.path, extraConfig: """
                role = server
                listen = 127.0.0.1:\(port)
                tls_certificate = \(tls.certificate)
                tls_key = \(tls.key)
                tls_client_ca = \(ca.hostCA)
                registry_refresh_seconds = 1
                \(serverConfig)
                """))
        }
    }

    /// A relay for host `name` (its certificate made and, unless `register` is false, added to the
    /// registry through the first server), listing the servers `order` names (default: all). It
    /// starts at one of them picked at random, then keeps to the one that answers.
    @discardableResult
    func relay(_ name: String, register: Bool = true, order: [Int]? = nil, certificate: (String, String)? = nil,
               serverCA: String? = nil, extraConfig: String = "") throws -> DaemonProcess {
        let tls = try certificate ?? ca.host(name)
        if register { try self.register(name, certificate: tls.0) }
        let list = (order ?? Array(servers.indices)).map { "localhost:\(ports[$0])" }.joined(separator: ", ")
        let relay = try DaemonProcess(extraConfig: """
            role = relay
            servers = \(list)
            tls_certificate = \(tls.0)
            tls_key = \(tls.1)
            tls_server_ca = \(serverCA ?? ca.serverCA)
            tier_connect_timeout_ms = 1000
            \(extraConfig)
            """)
        relays[name] = relay
        return relay
    }

    /// The server `relay` keeps to, from the relay's own metrics after a request through it (a
    /// relay that has not failed over has reached exactly one).
    func server(usedBy relay: DaemonProcess) throws -> Int {
        guard try relay.control(.ping) == .ok, case .metricsText(let text) = try relay.control(.metrics) else { throw HarnessError("relay metrics") }
        let scrape = try Scrape.parse(text)
        let used = ports.indices.filter {
            scrape.value("twofold_tier_connections_total", ["server": "localhost:\(ports[$0])", "outcome": "connected"]) > 0
        }
        guard used.count == 1 else { throw HarnessError("the relay reached servers \(used)") }
        return used[0]
    }

    func register(_ name: String, certificate: String) throws {
        let response = try servers[0].control(.hostAdd(name: name, certificatePEM: try ca.pem(certificate), fingerprint: nil, notAfterMillis: nil))
        guard case .hosts = response else { throw HarnessError("host add \(name): \(response)") }
    }

    /// Changes the stored policy through the first server (admin, on its own socket).
    func setPolicy(_ change: (inout PolicyDocument) -> Void) throws {
        guard case .policy(var document) = try servers[0].control(.policyShow) else { throw HarnessError("policy show") }
        change(&document)
        let response = try servers[0].control(.policySet(document))
        guard response == .ok else { throw HarnessError("policy set: \(response)") }
    }

    /// Imports `count` users with random secrets through the first server (admin, on its own socket).
    func provision(prefix: String, count: Int) throws -> [String: TestAuthenticator] {
        try servers[0].provisionMany(prefix: prefix, count: count)
    }
}

/// Each user's current code sent to every one of `targets` at once (daemons or relays), 16 users at a
/// time: the verdicts each user got, and the dialogs that failed outright.
func raceCodes(users: [String], apps: [String: TestAuthenticator], through targets: [DaemonProcess])
    -> (verdicts: [String: [VerdictCode]], failures: [String]) {
    let verdicts = Locked<[String: [VerdictCode]]>([:])
    let failures = Locked<[String]>([])
    DispatchQueue.concurrentPerform(iterations: 16) { lane in
        for index in stride(from: lane, to: users.count, by: 16) {
            let user = users[index]
            let code = apps[user]!.code()
            let group = DispatchGroup()
            for target in targets {
                DispatchQueue.global().async(group: group) {
                    do {
                        let outcome = try target.login(user, answer: code)
                        verdicts.withLock { $0[user, default: []].append(outcome.verdict) }
                    } catch {
                        failures.withLock { $0.append("\(user): \(error)") }
                    }
                }
            }
            group.wait()
        }
    }
    return (verdicts.withLock { $0 }, failures.withLock { $0 })
}

extension DaemonProcess {
    /// Imports users PREFIX0 … PREFIX(count−1) with random secrets (admin bulk import, 250 at a time).
    func provisionMany(prefix: String, count: Int) throws -> [String: TestAuthenticator] {
        var apps: [String: TestAuthenticator] = [:]
        let imports = try (0..<count).map { index -> EnrollmentImport in
            let user = "\(prefix)\(index)"
            let app = try TestAuthenticator.random()
            apps[user] = app
            return EnrollmentImport(user: user, source: .uri(app.uri(account: user)))
        }
        for chunk in stride(from: 0, to: imports.count, by: 250) {
            guard case .importedMany(let outcomes) = try control(.importEnrollments(Array(imports[chunk..<min(chunk + 250, imports.count)]))),
                  outcomes.allSatisfy({ $0.error == nil }) else { throw HarnessError("bulk import failed") }
        }
        return apps
    }
}
