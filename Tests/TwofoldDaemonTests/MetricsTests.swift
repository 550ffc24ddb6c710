import Foundation
import Testing
import TwofoldClient
import TwofoldDaemon
import TwofoldProtocol
import TwofoldTestSupport

/// The daemon's metrics after real logins over its socket, read back with Prometheus's own parser
/// from `twofoldctl metrics` and from a scrape of `metrics_listen`.
@Suite("metrics")
struct MetricsTests {
    static let host = HostName.local

    @Test("twofoldctl metrics and GET /metrics count the logins served: outcomes, services, latency, batches, locks, throttle delays")
    func countsWhatWasServed() throws {
        let daemon = try DaemonProcess(extraConfig: """
            max_failures = 3
            metrics_listen = 127.0.0.1:0
            admin_group = \(TestUser.adminGroup)
            """, throttleDelayMillis: 1_000)
        let alice = try daemon.provision("alice")
        let bob = try daemon.provision("bob")
        let code = alice.code()
        #expect(try daemon.login("alice", answer: code).verdict == .success)
        #expect(try daemon.login("alice", answer: code).verdict == .failure, "a replay")
        // The replay was a failure: this answer waits out a throttle delay (1 s), then succeeds.
        #expect(try daemon.login("alice", answer: alice.code(offset: 1), service: "sudo").verdict == .success)
        // Three wrong codes lock bob (the second and third wait 1 s and 2 s first); then he is locked at the start.
        #expect(try daemon.login("bob", answer: bob.wrongCode()).verdict == .failure)
        #expect(try daemon.login("bob", answer: bob.wrongCode()).verdict == .failure)
        #expect(try daemon.login("bob", answer: bob.wrongCode()).verdict == .locked)
        #expect(try daemon.login("bob", answer: bob.code()).verdict == .locked)
        #expect(try daemon.login("nosuchuser", answer: "123456").verdict == .ignore)
        #expect(try runAsTestUser(socketPath: daemon.socketPath, user: try TestUser.other.name) == "DENIED")

        let ctl = try daemon.ctlMetrics()
        #expect(ctl.status == 0, "\(ctl.output)")
        let text = try Scrape.parse(ctl.output)
        let http = try Scrape.fetch("http://127.0.0.1:\(try daemon.metricsPort())/metrics")
        #expect(http.contentType == "text/plain; version=0.0.4; charset=utf-8")
        for scrape in [text, http] {
            func verifies(_ outcome: String, _ service: String = "sshd") -> Double {
                scrape.value("twofold_verifies_total", ["outcome": outcome, "service": service, "host": Self.host])
            }
            #expect(verifies("success") == 1)
            #expect(verifies("success", "sudo") == 1)
            #expect(verifies("replay") == 1)
            #expect(verifies("failure") == 2)
            #expect(verifies("locked") == 2)
            #expect(verifies("ignore") == 1)
            #expect(verifies("denied") == 1)
            #expect(scrape.value("twofold_verifies_total") == 9, "no other login was counted")
            #expect(scrape.value("twofold_verify_duration_seconds_count") == 9)
            #expect(scrape.value("twofold_verify_duration_seconds_bucket", ["le": "+Inf"]) == 9)
            #expect(scrape.value("twofold_verify_duration_seconds_sum") > 0)
            #expect(scrape.value("twofold_locks_total") == 1)
            #expect(scrape.value("twofold_throttle_delays_total") == 3)
            #expect(scrape.value("twofold_throttle_delay_seconds_count") == 3)
            #expect(scrape.value("twofold_throttle_delay_seconds_bucket", ["le": "2.0"]) == 3)
            #expect(scrape.value("twofold_throttle_delay_seconds_bucket", ["le": "0.5"]) == 0)
            // One login at a time: every transaction held one commit (each answer's, each audit's).
            let batches = scrape.value("twofold_commit_batch_size_count")
            #expect(batches >= 9 && scrape.value("twofold_commit_batch_size_sum") == batches)
            #expect(scrape.value("twofold_commit_batch_size_bucket", ["le": "1.0"]) == batches)
            #expect(scrape.value("twofold_store_errors_total") == 0)
            #expect(scrape.value("twofold_store_reconnects_total") == 0)
            #expect(scrape.value("twofold_control_requests_total", ["request": "importEnrollment"]) == 2)
            #expect(scrape.value("twofold_control_requests_total", ["request": "metrics"]) == 1)
            // The fleet's metrics exist at zero until relays drive them.
            #expect(scrape.samples.contains { $0.name == "twofold_tier_failovers_total" && $0.value == 0 })
            #expect(scrape.value("twofold_relay_dialogs_total") == 0)
            #expect(scrape.labelValues("twofold_relay_dialogs_total", "outcome").contains("unavailable"))
            #expect(scrape.types["twofold_verify_duration_seconds"] == "histogram")
            #expect(scrape.types["twofold_verifies"] == "counter")
            #expect(scrape.types["twofold_connections_open"] == "gauge")
        }
        // twofoldctl's own connection is open while it asks; the scrape's connections are not the socket's.
        #expect(text.value("twofold_connections_open") >= 1)
    }

    @Test("twofoldctl metrics: permission denied for a user who is not an admin; an admin-group member may")
    func onlyAdmins() throws {
        let daemon = try DaemonProcess(extraConfig: "admin_group = \(TestUser.adminGroup)")
        let user = try daemon.ctlMetrics(as: try TestUser.user)
        #expect(user.status == 4, "\(user.output)")
        #expect(user.output.contains("admin"), "\(user.output)")
        #expect(!user.output.contains("twofold_"))
        let admin = try daemon.ctlMetrics(as: try TestUser.admin)
        #expect(admin.status == 0, "\(admin.output)")
        let scrape = try Scrape.parse(admin.output)
        #expect(scrape.value("twofold_control_requests_total", ["request": "metrics"]) == 2, "the refused request is counted too")
    }

    @Test("enroll at login is counted by the verdict its task sends, or as abandoned when the client leaves at a prompt")
    func enrollAtLoginIsCounted() throws {
        let daemon = try DaemonProcess(extraConfig: "require = everyone\nunenrolled = enroll")
        #expect(try daemon.login("yuri", answer: "000000").verdict == .failure, "a code that does not match the new secret")
        let (connection, prompt) = try HardeningTests.openDialog(daemon, user: "zack")
        guard case .promptEchoOn = prompt else { Issue.record("expected the enrollment prompt, got \(prompt)"); return }
        connection.close()
        // The daemon counts the abandoned dialog when it sees the close: ask until it has.
        var scrape = try Scrape.parse(try daemon.ctlMetrics().output)
        for _ in 0..<50 where scrape.value("twofold_verifies_total", ["outcome": "abandoned"]) == 0 {
            usleep(100_000)
            scrape = try Scrape.parse(try daemon.ctlMetrics().output)
        }
        #expect(scrape.value("twofold_verifies_total", ["outcome": "failure"]) == 1)
        #expect(scrape.value("twofold_verifies_total", ["outcome": "abandoned"]) == 1)
        #expect(scrape.value("twofold_verifies_total") == 2)
    }

    @Test("a peer inventing service names grows the service label to 64 values, then counts as \"other\"")
    func serviceLabelIsCapped() throws {
        let daemon = try DaemonProcess()
        for index in 0..<(DaemonMetrics.labelValuesLimit + 6) {
            #expect(try daemon.login("nosuchuser", answer: nil, service: "svc-\(index)").verdict == .ignore)
        }
        let scrape = try Scrape.parse(try daemon.ctlMetrics().output)
        let services = scrape.labelValues("twofold_verifies_total", "service")
        #expect(services.count == DaemonMetrics.labelValuesLimit + 1)
        #expect(scrape.value("twofold_verifies_total", ["service": "other"]) == 6)
        #expect(scrape.value("twofold_verifies_total", ["outcome": "ignore"]) == Double(DaemonMetrics.labelValuesLimit + 6))
    }

    @Test("garbage, an oversized head, a wrong path or method get an HTTP error; logins and /metrics go on", arguments: [
        ("garbage", "HTTP/1.1 400"),
        ("oversized", "HTTP/1.1 400"),
        ("GET /other HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"),
        ("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 405"),
    ])
    func badRequests(request: String, status: String) throws {
        let daemon = try DaemonProcess(extraConfig: "metrics_listen = 127.0.0.1:0")
        let erin = try daemon.provision("erin")
        let port = try daemon.metricsPort()
        let bytes: [UInt8] = switch request {
        case "garbage": [0x00, 0xFF, 0x13, 0x37] + Array("\r\n\r\nnot HTTP at all\r\n\r\n".utf8)
        case "oversized": Array("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: \(String(repeating: "a", count: 64 * 1024))\r\n\r\n".utf8)
        default: Array(request.utf8)
        }
        #expect(try RawHTTP.send(bytes, port: port).hasPrefix(status))
        #expect(try daemon.login("erin", answer: erin.code()).verdict == .success)
        let scrape = try Scrape.fetch("http://127.0.0.1:\(port)/metrics")
        #expect(scrape.value("twofold_verifies_total", ["outcome": "success"]) == 1)
        #expect(daemon.process?.isRunning == true)
    }

    @Test("metrics_listen: an IP address and a port, nothing else", arguments: [
        ("127.0.0.1:9464", "127.0.0.1:9464"), ("[::1]:0", "[::1]:0"), ("0.0.0.0:9464", "0.0.0.0:9464"),
        ("localhost:9464", nil), ("127.0.0.1", nil), ("::1:9464", nil), ("127.0.0.1:65536", nil), ("[127.0.0.1]:9464", nil),
    ] as [(String, String?)])
    func listenAddress(value: String, parsed: String?) throws {
        let configuration = try? DaemonConfiguration.parse("metrics_listen = \(value)")
        #expect(configuration?.metricsListen?.description == parsed)
        #expect(try DaemonConfiguration.parse("metrics_listen =").metricsListen == nil)
    }
}
