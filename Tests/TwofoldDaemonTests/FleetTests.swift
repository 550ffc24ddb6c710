import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The fleet with real parts: two servers on one PostgreSQL database and relays as separate hosts,
/// each a real twofoldd with its own directory, socket and certificate from scripts/fleet-ca.sh,
/// over real mutual TLS on loopback.
extension HeavyDaemonSuites {
@Suite("A fleet: servers, relays, hosts known by certificate", .serialized)
struct FleetTests {
    @Test("1,000 users, each code raced through three relays: exactly one success each; no relay holds a secret")
    func raceThroughRelays() throws {
        let fleet = try Fleet(servers: 2)
        let relays = try ["host-a", "host-b", "host-c"].enumerated().map { index, name in
            try fleet.relay(name, order: index % 2 == 0 ? [0, 1] : [1, 0])
        }
        let apps = try fleet.provision(prefix: "race", count: 1_000)
        let users = apps.keys.sorted()
        let (all, failures) = raceCodes(users: users, apps: apps, through: relays)
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(all.count == users.count)
        let wrong = all.filter { $0.value.filter { $0 == .success }.count != 1 || $0.value.count != 3 }
        #expect(wrong.isEmpty, "users without exactly one success: \(wrong.prefix(5))")
        #expect(all.values.allSatisfy { $0.allSatisfy { $0 == .success || $0 == .failure } })

        // No relay's files hold a secret: no key file, no database, none of the users' secrets in any form.
        for relay in relays {
            for file in try Self.files(under: relay.directory) {
                #expect(!file.hasSuffix(".key") && !file.hasSuffix(".sqlite") && !file.contains("twofold.key"), "\(file)")
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
                for user in users.prefix(50) {
                    let app = apps[user]!
                    #expect(!Self.contains(bytes, Array(app.base32.utf8)), "\(file) holds \(user)'s secret (base32)")
                    #expect(!Self.contains(bytes, app.secret.copyBytes()), "\(file) holds \(user)'s secret")
                }
            }
        }
    }

    @Test("a login through a relay: the user's verdicts, the host in the server's policy, a relay's password dropped, admin requests refused")
    func relayedDialogAndControl() throws {
        let fleet = try Fleet(servers: 1)
        let relay = try fleet.relay("host-a")
        let apps = try fleet.provision(prefix: "u", count: 1)
        let code = apps["u0"]!.code()
        // The module's password never reaches the tier.
        let start = AuthStart(user: "u0", service: "sshd", rhost: "192.0.2.1", tty: "ssh", password: "hunter2-password")
        let outcome = try LoginDialog.run(socketPath: relay.socketPath, start: start, timeoutSeconds: 10) { _, _ in code }
        #expect(outcome.verdict == .success)
        #expect(try relay.login("u0", answer: code).verdict == .failure, "the same code again")
        #expect(try relay.login("nobody-enrolled", answer: nil).verdict == .ignore)
        #expect(!fleet.servers[0].log.contains("hunter2-password") && !relay.log.contains("hunter2-password"))

        // Root on a host is root there: through its relay, admin requests are refused.
        let listed = try relay.control(.listUsers(after: nil, limit: 10))
        guard case .error(let code, _) = listed else { throw HarnessError("listUsers through a relay: \(listed)") }
        #expect(code == .permissionDenied)
        let imported = try relay.control(.importEnrollment(user: "u9", source: .uri(try TestAuthenticator.random().uri(account: "u9")), name: nil))
        guard case .error(.permissionDenied, _) = imported else { throw HarnessError("import through a relay: \(imported)") }
        // A user's own status goes through.
        #expect(try relay.control(.ping) == .ok)
        // The relay authorizes its local peers as a single host does: another user's dialog is refused
        // there, before the tier hears of it; a RELAY message from a local client is a protocol error.
        #expect(try runAsTestUser(socketPath: relay.socketPath, user: "u0") == "DENIED")
        let smuggled = try runAsTestUser(socketPath: relay.socketPath, frame: try FrameCodec.encode(.relay(Array("{}".utf8))))
        #expect(smuggled.contains("must start with AUTH_START or REQUEST"), "\(smuggled)")
        // SIGHUP reloads a relay's file as a single host's (it does not end it).
        #expect(try relay.reload().contains("configuration reloaded"))
        #expect(try relay.login("u0", answer: apps["u0"]!.code(offset: 1)).verdict == .success)
    }

    @Test("an unregistered host and a revoked one get DENIED (fail closed); revoking ends the host's open dialog")
    func registryAndRevocation() throws {
        let fleet = try Fleet(servers: 1)
        let stranger = try fleet.relay("host-x", register: false)
        let apps = try fleet.provision(prefix: "r", count: 2)
        #expect(try stranger.login("r0", answer: apps["r0"]!.code()).verdict == .denied)
        #expect(fleet.servers[0].log.contains("not in the host registry"))

        let relay = try fleet.relay("host-a")
        // A dialog waits at the code prompt while the host is revoked.
        let connection = try relay.connect()
        try connection.send(.authStart(AuthStart(user: "r1", service: "sshd", deadlineMillis: 10_000, capabilities: [])))
        guard case .promptEchoOff = try connection.receive() else { throw HarnessError("no prompt") }
        let revoked = try fleet.servers[0].control(.hostRevoke(name: "host-a"))
        guard case .hosts(let certificates) = revoked, certificates.allSatisfy({ $0.revokedMillis != nil }) else {
            throw HarnessError("host revoke: \(revoked)")
        }
        // The open dialog ends with a verdict that fails (never a bare close, never SUCCESS).
        let ended = try connection.receive()
        guard case .verdict(let verdict, _) = ended else { throw HarnessError("after revocation: \(ended)") }
        #expect(verdict != .success)
        #expect(try relay.login("r1", answer: apps["r1"]!.code()).verdict == .denied)
    }

    @Test("a host certificate cannot serve; a server certificate cannot pose as a host")
    func certificatesKeepTheirSide() throws {
        let fleet = try Fleet(servers: 1)
        let apps = try fleet.provision(prefix: "c", count: 1)
        // A relay that trusts the host CA for servers still refuses a host certificate presented as the server's
        // (it names localhost, but not for serverAuth) — and a relay set up right refuses a server signed by the host CA.
        let posing = try fleet.ca.hostPosingAsServer()
        let impostorPort = try PostgresCluster.freePort()
        let impostor = try DaemonProcess(extraConfig: """
            role = server
            listen = 127.0.0.1:\(impostorPort)
            tls_certificate = \(posing.certificate)
            tls_key = \(posing.key)
            tls_client_ca = \(fleet.ca.hostCA)
            """)
        let host = try fleet.ca.host("host-a")
        try fleet.register("host-a", certificate: host.certificate)
        let misled = try DaemonProcess(extraConfig: """
            role = relay
            servers = localhost:\(impostorPort)
            tls_certificate = \(host.certificate)
            tls_key = \(host.key)
            tls_server_ca = \(fleet.ca.serverCA)
            """)
        #expect(try misled.login("c0", answer: apps["c0"]!.code()).verdict == .unavailable)
        #expect(misled.log.contains("tier server unreachable"))
        _ = impostor

        // The server's own certificate as a relay's client certificate: refused by the server (wrong CA).
        let serverAsHost = try fleet.relay("localhost", register: false, certificate: (fleet.ca.directory + "/servers/tier-0.pem",
                                                                                        fleet.ca.directory + "/servers/tier-0.key"))
        let verdict = try serverAsHost.login("c0", answer: apps["c0"]!.code()).verdict
        #expect(verdict == .unavailable || verdict == .denied)
        #expect(verdict != .success)
    }

    @Test("one server killed mid-load: relays fail over, no code gets SUCCESS twice")
    func failover() throws {
        let fleet = try Fleet(servers: 2)
        let relays = try ["host-a", "host-b"].map { try fleet.relay($0) }
        let apps = try fleet.provision(prefix: "f", count: 300)
        let users = apps.keys.sorted()
        // The server the first relay keeps to dies mid-load: that relay must fail over.
        let victim = try fleet.server(usedBy: relays[0])
        let successes = Locked<[String: Int]>([:])
        DispatchQueue.concurrentPerform(iterations: 8) { lane in
            for index in stride(from: lane, to: users.count, by: 8) {
                if index == 100 { fleet.servers[victim].kill() }
                let user = users[index]
                let code = apps[user]!.code()
                for relay in relays {
                    if let outcome = try? relay.login(user, answer: code), outcome.verdict == .success {
                        successes.withLock { $0[user, default: 0] += 1 }
                    }
                }
            }
        }
        let counts = successes.withLock { $0 }
        #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts.filter { $0.value != 1 })")
        // After the kill every login went to the other server: nearly every user got in once.
        #expect(counts.count >= users.count - 16, "\(counts.count) of \(users.count)")
        // And the killed server's slot is taken again when it comes back.
        try fleet.servers[victim].start()
        let late = try fleet.provision(prefix: "late", count: 1)
        #expect(try relays[0].login("late0", answer: late["late0"]!.code()).verdict == .success)
    }

    @Test("a host at its cap gets DENIED for a new dialog, while another host logs in")
    func perHostCap() throws {
        let fleet = try Fleet(servers: 1, serverConfig: "max_connections_per_host = 2")
        let busy = try fleet.relay("host-busy")
        let other = try fleet.relay("host-other")
        let apps = try fleet.provision(prefix: "p", count: 4)
        var held: [TwofoldConnection] = []
        for user in ["p0", "p1"] {
            let connection = try busy.connect()
            try connection.send(.authStart(AuthStart(user: user, service: "sshd", deadlineMillis: 10_000, capabilities: [])))
            guard case .promptEchoOff = try connection.receive() else { throw HarnessError("no prompt") }
            held.append(connection)
        }
        let refused = try busy.login("p2", answer: apps["p2"]!.code())
        #expect(refused.verdict == .denied)
        #expect(try other.login("p3", answer: apps["p3"]!.code()).verdict == .success)
        held.removeAll()
    }

    @Test("the database stopped: relayed logins UNAVAILABLE at once, back after it starts")
    func databaseOutage() throws {
        let fleet = try Fleet(servers: 1, serverConfig: "postgresql_connect_timeout_ms = 1000\npostgresql_statement_timeout_ms = 1000",
                              privateCluster: true)
        let relay = try fleet.relay("host-a")
        let apps = try fleet.provision(prefix: "o", count: 2)
        try fleet.cluster.stopImmediate()
        let during = try relay.login("o0", answer: apps["o0"]!.code())
        #expect(during.verdict == .unavailable, "\(during.transcript)\n\(fleet.servers[0].log.suffix(3000))")
        try fleet.cluster.start()
        var verdict = VerdictCode.unavailable
        for _ in 0..<50 where verdict == .unavailable {
            verdict = try relay.login("o1", answer: apps["o1"]!.code()).verdict
            if verdict == .unavailable { usleep(200_000) }
        }
        #expect(verdict == .success)
    }

    @Test("no server reachable: the relay answers UNAVAILABLE as the first message (the module's failmode decides)")
    func noServer() throws {
        let fleet = try Fleet(servers: 1)
        let relay = try fleet.relay("host-a")
        fleet.servers[0].kill()
        let outcome = try relay.login("anyone", answer: "123456")
        #expect(outcome.verdict == .unavailable)
        #expect(outcome.transcript.count == 1, "UNAVAILABLE must be the first message: \(outcome.transcript)")
    }

    @Test("enrollment only through the hosts the policy opens; enrolled through one host, a login through another")
    func enrollmentThroughEnrollHosts() throws {
        let fleet = try Fleet(servers: 2)
        let bastion = try fleet.relay("bastion-1", order: [0])
        let web = try fleet.relay("web-1", order: [1])
        // Closed by default: a relayed caller cannot enroll anywhere.
        guard case .error(.permissionDenied, _) = try bastion.control(.enrollBegin(user: nil, currentCode: nil)) else {
            throw HarnessError("enrollment through a relay was open by default")
        }
        try fleet.setPolicy { $0.enrollHosts = ["bastion-*"] }
        guard case .error(.permissionDenied, let why) = try web.control(.enrollBegin(user: nil, currentCode: nil)) else {
            throw HarnessError("enrollment through web-1 was open")
        }
        #expect(why.contains("web-1"))
        // Through the bastion: root of bastion-1 enrolls the account "root".
        guard case .enrollment(let offer) = try bastion.control(.enrollBegin(user: nil, currentCode: nil)) else {
            throw HarnessError("no enrollment offer through bastion-1")
        }
        #expect(offer.user == "root")
        let app = try TestAuthenticator(base32: offer.secretBase32)
        guard case .recoveryCodes(let codes) = try bastion.control(.enrollVerify(user: nil, codes: [app.code()])), !codes.isEmpty else {
            throw HarnessError("enrollVerify through bastion-1")
        }
        #expect(try bastion.control(.enrollActivate(user: nil)) == .ok)
        // The login through web-1 (which lists only the other server) uses the same secret, once.
        let next = app.code(offset: 1)
        #expect(try web.login("root", answer: next).verdict == .success)
        #expect(try bastion.login("root", answer: next).verdict == .failure)
        // The audit says which host each happened on.
        guard case .audit(let records) = try fleet.servers[0].control(.audit(user: "root", sinceMillis: nil, outcome: nil, limit: 50, host: nil)) else {
            throw HarnessError("audit")
        }
        #expect(records.contains { $0.action == "enroll" && $0.host == "bastion-1" })
        #expect(records.contains { $0.action == "verify" && $0.outcome == "success" && $0.host == "web-1" })
        guard case .status(let status) = try fleet.servers[1].control(.showUser(user: "root")) else { throw HarnessError("showUser") }
        #expect(status.lastSuccessHost == "web-1")
    }

    @Test("admin requests through a relay: refused without a session, a session only for a fleet admin on an admin host with a current code")
    func adminSessions() throws {
        let fleet = try Fleet(servers: 1)
        let bastion = try fleet.relay("bastion-1")
        let web = try fleet.relay("web-1")
        let root = try fleet.servers[0].provision("root")
        let listing = ControlRequest.listUsers(after: nil, limit: 10)
        guard case .error(.permissionDenied, _) = try bastion.control(listing) else { throw HarnessError("admin request without a session") }
        // Not a fleet admin yet: no session, even with a right code.
        guard case .error(.permissionDenied, _) = try bastion.control(.adminSession(code: root.code())) else {
            throw HarnessError("a session for a user who is not a fleet admin")
        }
        try fleet.setPolicy { $0.admins = ["root"]; $0.adminHosts = ["bastion-*"] }
        guard case .error(.permissionDenied, _) = try web.control(.adminSession(code: root.code(offset: 1))) else {
            throw HarnessError("a session on a host that is not an admin host")
        }
        guard case .error(.invalidCode, _) = try bastion.control(.adminSession(code: root.wrongCode())) else {
            throw HarnessError("a session with a wrong code")
        }
        guard case .adminSession(let until) = try bastion.control(.adminSession(code: root.code(offset: 1))) else {
            throw HarnessError("no session with a right code")
        }
        #expect(until > Int64(Date().timeIntervalSince1970 * 1000) + 9 * 60_000)
        guard case .users = try bastion.control(listing) else { throw HarnessError("admin request in a session") }
        // The session is bastion-1's: web-1 still has none; the registry stays on the servers' sockets.
        guard case .error(.permissionDenied, _) = try web.control(listing) else { throw HarnessError("web-1 used bastion-1's session") }
        guard case .error(.permissionDenied, _) = try bastion.control(.hostRevoke(name: "web-1")) else {
            throw HarnessError("host registry through a relay")
        }
        // The code that opened the session was used up like a login's.
        #expect(try bastion.login("root", answer: root.code(offset: 1)).verdict == .failure)
    }

    @Test("failures spread over three hosts (each within its share) lock at max_failures; the right code is then refused through every host")
    func spreadFailures() throws {
        let fleet = try Fleet(servers: 2)
        let relays = try ["host-a", "host-b", "host-c"].map { try fleet.relay($0) }
        // max_failures 6: a host's share is 2, so it takes three hosts to lock.
        try fleet.setPolicy { $0.maxFailures = 6 }
        let apps = try fleet.provision(prefix: "s", count: 1)
        let app = apps["s0"]!
        for attempt in 0..<6 { #expect(try relays[attempt % 3].login("s0", answer: app.wrongCode()).verdict != .success) }
        for relay in relays {
            #expect(try relay.login("s0", answer: app.code()).verdict == .locked)
        }
    }

    @Test("emergency codes: issued by the host's root, usable once and only while no server answers, audited at the tier when it is back")
    func breakGlass() throws {
        let fleet = try Fleet(servers: 1)
        let relay = try fleet.relay("host-a")
        guard case .breakGlass(let issued) = try relay.control(.breakGlassIssue(accounts: ["root"], count: 2)), issued.count == 2 else {
            throw HarnessError("issue")
        }
        let codes = issued.compactMap(\.code)
        #expect(codes.count == 2 && codes.allSatisfy { $0.count == 19 })   // 16 base32 characters in groups of 4: 80 bits
        // Only this host's root issues them; the file holds no code.
        let asUser = try runAsTestUser(socketPath: relay.socketPath, frame: try FrameCodec.encode(
            .request(Array(try JSONEncoder().encode(ControlRequest.breakGlassIssue(accounts: ["root"], count: 1))))))
        #expect(asUser.contains("permissionDenied"), "\(asUser)")
        let file = try String(contentsOfFile: relay.directory + "/state/break-glass.json", encoding: .utf8)
        #expect(!codes.contains { file.contains($0) || file.contains($0.replacingOccurrences(of: "-", with: "")) })

        // The tier answers: the code is not asked, the login is the tier's.
        #expect(try relay.login("root", answer: codes[0]).verdict == .ignore)
        // No server: root is asked for an emergency code; a wrong one fails, a right one works once.
        fleet.servers[0].kill()
        let wrong = try relay.login("root", answer: "AAAA-BBBB-CCCC-DDDD")
        #expect(wrong.verdict == .failure)
        #expect(wrong.transcript.contains { if case .promptEchoOff(let text, _) = $0 { return text.contains("Emergency code") } else { return false } })
        #expect(try relay.login("root", answer: codes[0].lowercased()).verdict == .success)
        #expect(try relay.login("root", answer: codes[0]).verdict == .failure, "a used emergency code")
        // A user without codes: UNAVAILABLE first, the module's failmode decides.
        let other = try relay.login("someone", answer: "x")
        #expect(other.verdict == .unavailable && other.transcript.count == 1)
        guard case .breakGlass(let left) = try relay.control(.breakGlassList) else { throw HarnessError("list") }
        #expect(left == [BreakGlassEntry(account: "root", unused: 1)])

        // The server is back: the issue and the two uses reach its audit, under the relay's host.
        try fleet.servers[0].start()
        _ = try relay.login("someone", answer: "x")   // a server answered: the relay delivers at once
        var events: [AuditEntry] = []
        for _ in 0..<100 {
            guard case .audit(let records) = try fleet.servers[0].control(.audit(user: "root", sinceMillis: nil, outcome: nil, limit: 100, host: "host-a")) else {
                throw HarnessError("audit")
            }
            events = records.filter { $0.action == "break-glass" }
            if events.count >= 3 { break }
            usleep(100_000)
        }
        #expect(Set(events.map(\.outcome)) == ["issued", "failure", "success"], "\(events)")
        #expect(events.allSatisfy { $0.host == "host-a" })
    }

    @Test("doctor on a relay: the servers as it reaches them, its certificate, its emergency codes; on a server: the host registry")
    func doctor() throws {
        let fleet = try Fleet(servers: 2)
        let relay = try fleet.relay("host-a")
        let arguments = ["doctor", "--json", "--no-sshd", "--pam-dir", relay.directory]
        let healthy = try run([TestPaths.twofoldctl] + arguments + ["--socket", relay.socketPath])
        #expect(healthy.output.contains("\"fleet.tier\""), "\(healthy.output)")
        #expect(!healthy.output.contains("\"key.mode\"") && !healthy.output.contains("\"store."), "a relay has no key or store to check")
        #expect(healthy.output.contains("\"fleet.certificate\"") && healthy.output.contains("\"fleet.break-glass\""))
        #expect(!healthy.output.contains("\"severity\" : \"error\"") && !healthy.output.contains("\"severity\":\"error\""), "\(healthy.output)")
        fleet.servers[1].kill()
        let degraded = try run([TestPaths.twofoldctl] + arguments + ["--socket", relay.socketPath])
        #expect(degraded.output.contains("does not answer"), "\(degraded.output)")
        fleet.servers[0].kill()
        let down = try run([TestPaths.twofoldctl] + arguments + ["--socket", relay.socketPath])
        #expect(down.status == 1 && down.output.contains("no server of the tier answers"), "\(down.output)")
        try fleet.servers[0].start()
        let server = try run([TestPaths.twofoldctl, "doctor", "--json", "--no-sshd", "--pam-dir", relay.directory, "--socket", fleet.servers[0].socketPath])
        #expect(server.output.contains("\"fleet.hosts\"") && server.output.contains("1 host registered"), "\(server.output)")
    }

    @Test("one host's share of a user's failures: past it that host is refused before a code is asked; the user logs in elsewhere and is never locked by one or two hosts")
    func hostFailureQuota() throws {
        let fleet = try Fleet(servers: 2)
        let (a, b, c) = (try fleet.relay("host-a"), try fleet.relay("host-b"), try fleet.relay("host-c"))
        let apps = try fleet.provision(prefix: "q", count: 1)
        let app = apps["q0"]!
        // max_failures 10: a host's share is 4.
        for _ in 0..<4 { #expect(try a.login("q0", answer: app.wrongCode()).verdict == .failure) }
        // host-a keeps hammering: refused before any prompt, nothing checked or counted.
        for _ in 0..<10 {
            let refused = try a.login("q0", answer: app.wrongCode())
            #expect(refused.verdict == .denied)
            #expect(!refused.transcript.contains { if case .promptEchoOff = $0 { return true } else { return false } })
        }
        // host-b adds its share: 8 in all, under the lock.
        for _ in 0..<4 { #expect(try b.login("q0", answer: app.wrongCode()).verdict == .failure) }
        #expect(try b.login("q0", answer: app.code()).verdict == .denied, "host-b is at its share too")
        // The user logs in from a third host; then the counts start again.
        #expect(try c.login("q0", answer: app.code()).verdict == .success)
        #expect(try a.login("q0", answer: app.wrongCode()).verdict == .failure)
        guard case .status(let status) = try fleet.servers[0].control(.showUser(user: "q0")) else { throw HarnessError("showUser") }
        #expect(status.lockedUntilMillis == nil && status.failures == 1)
        guard case .audit(let records) = try fleet.servers[0].control(.audit(user: "q0", sinceMillis: nil, outcome: "throttled", limit: 100, host: "host-a")) else {
            throw HarnessError("audit")
        }
        #expect(records.count == 10)
    }

    @Test("metrics in a fleet: a relay counts its dialogs, tier connections and failovers; a server counts verifies by host")
    func metrics() throws {
        let fleet = try Fleet(servers: 2)
        let relay = try fleet.relay("host-a")
        let apps = try fleet.provision(prefix: "m", count: 2)
        #expect(try relay.login("m0", answer: apps["m0"]!.code()).verdict == .success)
        #expect(try relay.login("m1", answer: apps["m1"]!.wrongCode()).verdict == .failure)
        let victim = try fleet.server(usedBy: relay)
        fleet.servers[victim].kill()
        #expect(try relay.login("m1", answer: apps["m1"]!.code()).verdict == .success)
        guard case .metricsText(let relayText) = try relay.control(.metrics) else { throw HarnessError("relay metrics") }
        let atRelay = try Scrape.parse(relayText)
        #expect(atRelay.value("twofold_relay_dialogs_total", ["outcome": "success"]) == 2)
        #expect(atRelay.value("twofold_relay_dialogs_total", ["outcome": "failure"]) == 1)
        #expect(atRelay.value("twofold_tier_failovers_total") == 1)
        #expect(atRelay.value("twofold_tier_connections_total", ["outcome": "failed"]) >= 1)
        guard case .metricsText(let serverText) = try fleet.servers[1 - victim].control(.metrics) else { throw HarnessError("server metrics") }
        let atServer = try Scrape.parse(serverText)
        #expect(atServer.value("twofold_verifies_total", ["outcome": "success", "host": "host-a"]) == 1)
    }

    @Test("versions are chosen in the TLS handshake: a client that offers none the server speaks is refused")
    func versionNegotiation() throws {
        let fleet = try Fleet(servers: 1)
        let host = try fleet.ca.host("host-v")
        try fleet.register("host-v", certificate: host.certificate)
        func handshake(_ alpn: String) throws -> String {
            try run(["/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:\(fleet.ports[0])", "-alpn", alpn, "-cert", host.certificate,
                     "-key", host.key, "-CAfile", fleet.ca.serverCA, "-servername", "localhost", "-tls1_3", "-quiet"], input: "").output
        }
        _ = try handshake("twofold-relay/99")
        #expect(fleet.servers[0].log.contains("no relay protocol version in common"), "\(fleet.servers[0].log.suffix(2000))")
        // A relay offering every version it speaks gets the newest the server speaks.
        let relay = try fleet.relay("host-w")
        #expect(try relay.control(.ping) == .ok)
    }

    @Test("per-host policy rules by pattern, set through one server, decide the next login through any relay and server")
    func perHostPolicy() throws {
        let fleet = try Fleet(servers: 2)
        let bastion = try fleet.relay("bastion-7", order: [1])
        let build = try fleet.relay("build-3", order: [1])
        // Nobody enrolled: not required anywhere yet.
        #expect(try bastion.login("newcomer", answer: nil).verdict == .ignore)
        try fleet.setPolicy { $0.hosts = ["bastion-*": "required", "build-*": "optional"]; $0.require = "everyone" }
        // Set through server 0; the relays list only server 1.
        let refused = try bastion.login("newcomer", answer: nil)
        #expect(refused.verdict == .denied, "\(refused.transcript)")
        #expect(try build.login("newcomer", answer: nil).verdict == .ignore)
        guard case .policyExplanation(let why) = try fleet.servers[1].control(.policyExplain(user: "newcomer", service: "sshd", host: "bastion-7")) else {
            throw HarnessError("policy explain")
        }
        #expect(why.decidedBy == "host", "\(why)")
    }

    static func files(under directory: String) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory)
        var found: [String] = []
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = directory + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               !name.hasSuffix(".sock") { found.append(path) }
        }
        return found
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<start + needle.count]) == needle { return true }
        }
        return false
    }
}
}
