import Foundation
import Testing
import TwofoldClient
import TwofoldProtocol
import TwofoldTestSupport
@testable import TwofoldDaemon
#if canImport(Glibc)
import Glibc
#endif

/// The shipped unit (systemd/twofoldd.service) and what its sandbox does to the daemon. There is no
/// systemd as PID 1 here, so the unit cannot be started: the tests guard its text, run
/// systemd-analyze on it, and rebuild with unshare and setpriv the parts that change what the
/// daemon sees (user and network namespaces, a non-root uid without capabilities).
@Suite("systemd unit and sandbox")
struct SystemdUnitTests {
    // MARK: the unit's text

    @Test("the unit keeps real peer uids and sets memory and task limits")
    func unitText() throws {
        let unit = try SystemdUnit(path: TestPaths.root + "/systemd/twofoldd.service")
        // PrivateUsers=yes would make every non-root caller uid 65534 (the daemon would refuse to start).
        let privateUsers = unit.values("Service", "PrivateUsers")
        #expect(privateUsers.allSatisfy { ["no", "false", "0", "off"].contains($0.lowercased()) }, "PrivateUsers=\(privateUsers)")
        // The socket unit owns /run/twofold (root, 0755); a RuntimeDirectory would be chowned to the dynamic user.
        for key in ["RuntimeDirectory", "RuntimeDirectoryMode", "RuntimeDirectoryPreserve"] {
            #expect(unit.values("Service", key).isEmpty, "\(key)= is set")
        }
        let memoryMax = try #require(unit.values("Service", "MemoryMax").last)
        let bytes = try #require(SystemdUnit.bytes(memoryMax), "MemoryMax=\(memoryMax)")
        #expect(bytes >= 256 << 20, "MemoryMax=\(memoryMax) leaves too little room over a ~42 MiB peak")
        let tasksMax = try #require(unit.values("Service", "TasksMax").last.flatMap { Int($0) })
        #expect(tasksMax >= 4 * 256 + 16, "TasksMax=\(tasksMax): up to four threads per core on a 256-core machine")
        #expect(unit.values("Service", "DynamicUser") == ["yes"])
        #expect(unit.values("Service", "RestrictAddressFamilies") == ["AF_UNIX"])

        let socket = try SystemdUnit(path: TestPaths.root + "/systemd/twofoldd.socket")
        #expect(socket.values("Socket", "ListenStream") == ["/run/twofold/twofold.sock"])
        #expect(socket.values("Socket", "DirectoryMode") == ["0755"])
        #expect(socket.values("Socket", "SocketMode") == ["0666"])
    }

    @Test("systemd-analyze verifies the units (twofoldd's and twofold-deliver's) and rates the service's exposure low")
    func systemdAnalyze() throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard access(analyze, X_OK) == 0 else { throw HarnessError("\(analyze) missing: install the systemd package (scripts/install-deps.sh does)") }
        let directory = try makeTemporaryDirectory("unit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The shipped ExecStart names /usr/sbin/twofoldd, which is not installed here: point it at the build.
        let service = try String(contentsOfFile: TestPaths.root + "/systemd/twofoldd.service", encoding: .utf8)
            .replacingOccurrences(of: "ExecStart=/usr/sbin/twofoldd", with: "ExecStart=\(TestPaths.twofoldd)")
        try service.write(toFile: directory + "/twofoldd.service", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: TestPaths.root + "/systemd/twofoldd.socket", toPath: directory + "/twofoldd.socket")
        // The delivery service's units too (TwofoldDeliveryTests.DeliveryUnitTests checks them further).
        let deliver = try String(contentsOfFile: TestPaths.root + "/systemd/twofold-deliver.service", encoding: .utf8)
            .replacingOccurrences(of: "ExecStart=/usr/sbin/twofold-deliver", with: "ExecStart=\(TestPaths.products)/twofold-deliver")
        try deliver.write(toFile: directory + "/twofold-deliver.service", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: TestPaths.root + "/systemd/twofold-deliver.socket", toPath: directory + "/twofold-deliver.socket")
        let verify = try run([analyze, "verify", directory + "/twofoldd.service", directory + "/twofoldd.socket",
                              directory + "/twofold-deliver.service", directory + "/twofold-deliver.socket"])
        #expect(verify.status == 0 && verify.output.isEmpty, "\(verify.output)")

        let security = try run([analyze, "security", "--offline=yes", "--no-pager", TestPaths.root + "/systemd/twofoldd.service"])
        let line = try #require(security.output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(security.output)")
        let figure = try #require(line.firstMatch(of: /: (\d+\.\d+)/).flatMap { Double($0.1) }, "\(line)")
        #expect(figure <= 1.0, "\(line)")
        // The one point it still counts against PrivateUsers= is the price of real peer uids.
        #expect(security.output.contains("✗ PrivateUsers="), "\(security.output)")
    }

    // MARK: the user namespace guard

    @Test("only the one-line identity map counts as the initial user namespace", arguments: [
        ("         0          0 4294967295\n", true),
        ("0 0 4294967295", true),
        ("\t0\t0\t4294967295\n\n", true),
        ("         0          0          1\n", false),           // unshare -U -r
        ("         0      61184          1\n     65534      65534          1\n", false),  // PrivateUsers=yes (root maps, plus nobody)
        ("0 0 4294967295\n1 1 1\n", false),
        ("0 0 4294967294\n", false),
        ("", false),
    ])
    func identityMap(text: String, identity: Bool) {
        #expect(UserNamespace.isIdentity(text) == identity)
    }

    @Test("a foreign or unreadable map is a configuration error naming the namespace and the fix")
    func guardMessages() throws {
        #expect(throws: Never.self) { try UserNamespace.requireInitialNamespace { _ in "0 0 4294967295\n" } }
        do {
            try UserNamespace.requireInitialNamespace { path in path.hasSuffix("uid_map") ? "0 0 4294967295\n" : "  0   0   1\n" }
            Issue.record("a foreign gid_map was accepted")
        } catch let error as ConfigurationError {
            #expect(error.message.hasPrefix("twofoldd is running in a user namespace (gid_map: 0 0 1): peer credentials would not be the callers' real uids"))
            #expect(error.message.hasSuffix("Remove PrivateUsers= from the unit (or run twofoldd outside the namespace)."))
        }
        do {
            try UserNamespace.requireInitialNamespace { path in throw ConfigurationError("\(path): Permission denied") }
            Issue.record("an unreadable map was accepted")
        } catch let error as ConfigurationError {
            #expect(error.message.contains("(uid_map: unreadable: /proc/self/uid_map: Permission denied)"), "\(error)")
        }
        // The tests themselves run in the initial namespace (the next tests depend on it).
        #expect(throws: Never.self) { try UserNamespace.requireInitialNamespace() }
    }

    @Test("started in a user namespace (unshare -U -r), twofoldd exits 1 without READY=1 and says why")
    func refusesUserNamespace() throws {
        let unshare = ["/usr/bin/unshare", "--user", "--map-root-user", "--"]
        // First, that this machine can make one (root can): otherwise the test would prove nothing.
        let probe = try run(unshare + ["/bin/cat", "/proc/self/uid_map"])
        #expect(probe.status == 0 && !UserNamespace.isIdentity(probe.output), "unshare: \(probe.output)")

        let daemon = try DaemonProcess(start: false)
        do {
            try daemon.start(prefix: unshare)
            daemon.kill()  // it would serve, seeing every caller but root as 65534
            Issue.record("READY=1 from a daemon in a user namespace")
        } catch is HarnessError {}  // it exited before READY=1
        #expect(daemon.process?.wait() == 1)
        #expect(daemon.log.contains("twofoldd cannot run: twofoldd is running in a user namespace (uid_map: 0 0 1)"), "\(daemon.log)")
        #expect(daemon.log.contains("Remove PrivateUsers= from the unit"), "\(daemon.log)")
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/state"), "nothing opened before the check")

        // --check-config reports it too; outside the namespace the same config is fine.
        let check = try run(unshare + [TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(check.status == 1 && check.output.contains("running in a user namespace (uid_map: 0 0 1)"), "\(check.output)")
        let plain = try run([TestPaths.twofoldd, "--config", daemon.configPath, "--check-config"])
        #expect(plain.status == 0 && plain.output == """
            key file \(daemon.directory)/state/twofold.key does not exist yet: twofoldd creates it at the first start
            configuration OK

            """, "\(plain.output)")
    }

    @Test("why: in a user namespace SO_PEERCRED shows a real user as 65534; outside it, as itself")
    func peerCredentialsInAUserNamespace() throws {
        let me = try TestUser.user
        let directory = try makeTemporaryDirectory("cred")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let listener = try bindListening(directory + "/peer.sock")
        defer { close(listener) }
        chmod(directory + "/peer.sock", 0o666)
        // The test user connects and waits for the server to hang up.
        let client = try ChildProcess(me.setpriv + ["/usr/bin/python3", "-c", """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1]); s.recv(1)
            """, directory + "/peer.sock"])
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 30_000) > 0 else { throw HarnessError("the client never connected") }
        let accepted = accept(listener, nil, nil)
        guard accepted >= 0 else { throw HarnessError("accept: \(String(cString: strerror(errno)))") }
        defer { close(accepted); client.wait() }
        // The same connection read from two namespaces: SO_PEERCRED is translated into the reader's.
        let peerUID = ["/usr/bin/python3", "-c", """
            import socket, struct
            s = socket.socket(fileno=3)
            print(struct.unpack('3i', s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1])
            s.detach()
            """]
        func uidSeen(under prefix: [String]) throws -> String {
            let out = directory + "/out.\(prefix.count)"
            let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            defer { close(fd) }
            let child = try ChildProcess(prefix + peerUID, fds: [1: fd, 2: fd, 3: accepted])
            _ = child.wait()
            return ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try uidSeen(under: []) == "\(me.uid)")
        #expect(try uidSeen(under: ["/usr/bin/unshare", "--user", "--map-root-user", "--"]) == "65534")
    }

    @Test("outside a user namespace a real user is seen as that user: twofoldctl status, and the audit of its login dialog")
    func realUserIsSeenAsItself() throws {
        try PAMBuild.require()
        let me = try TestUser.user
        let daemon = try DaemonProcess()
        let account = try daemon.provision(me.name)
        // The CLI binary run as the test user: its own status, found by its real uid.
        let status = try run(me.setpriv + [TestPaths.twofoldctl, "status", "--socket", daemon.socketPath])
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.split(separator: "\n").contains { $0.hasPrefix("User:") && $0.dropFirst(5).trimmingCharacters(in: .whitespaces) == me.name },
                "\(status.output)")
        // A login dialog from its uid (a screen locker through the real PAM module), audited with that uid.
        let pam = try PAMConfig(socket: daemon.socketPath)
        let login = try pam.authenticate(me.name, answers: [account.code()], as: me)
        #expect(login.result == "PAM_SUCCESS", "\(login.lines)\n\(daemon.log)")
        guard case .audit(let entries) = try daemon.control(.audit(user: me.name, sinceMillis: nil, outcome: nil, limit: 10)) else {
            Issue.record("audit"); return
        }
        let verify = entries.filter { $0.action == "verify" }
        #expect(!verify.isEmpty && verify.allSatisfy { $0.peerUID == me.uid }, "\(entries)")
        #expect(!entries.contains { $0.peerUID == 65534 }, "\(entries)")
    }

    // MARK: the rest of the sandbox, rebuilt without systemd

    @Test("under the unit's sandbox as far as it can be rebuilt (non-root uid, no capabilities, no_new_privs, private network, inherited socket) twofoldd serves real uids")
    func sandboxedDaemon() throws {
        let me = try TestUser.user, admin = try TestUser.admin
        // A uid from DynamicUser's range (61184-65519), as systemd would allocate.
        let dynamicUID: uid_t = 61_184
        let daemon = try DaemonProcess(extraConfig: "admin_group = \(TestUser.adminGroup)\nrequire = groups\nrequired_groups = \(TestUser.requiredGroup)", start: false)
        // StateDirectory=: systemd creates it, mode 0700, owned by the service's uid.
        let state = daemon.directory + "/state"
        #expect(mkdir(state, 0o700) == 0 && chown(state, dynamicUID, dynamicUID) == 0)
        // twofoldd.socket: a socket systemd bound as root, mode 0666, passed as fd 3.
        let socketPath = daemon.directory + "/activated.sock"
        let listener = try bindListening(socketPath)
        defer { close(listener) }
        chmod(socketPath, 0o666)
        let notify = try NotifyListener(path: daemon.directory + "/notify-sandbox.sock")
        defer { notify.close() }
        chmod(notify.path, 0o666)
        var environment = ChildProcess.currentEnvironment()
        environment["NOTIFY_SOCKET"] = notify.path
        let log = open(daemon.logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(log) }
        // PrivateNetwork= (a new network namespace), DynamicUser= (a non-root uid and gid, no
        // groups), CapabilityBoundingSet= and AmbientCapabilities= (none), NoNewPrivileges=, UMask=0077.
        let argv = ["/usr/bin/unshare", "--net", "--",
                    "/usr/bin/setpriv", "--reuid=\(dynamicUID)", "--regid=\(dynamicUID)", "--clear-groups", "--no-new-privs",
                    "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--",
                    "/bin/sh", "-c", "umask 077; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --config \"$1\"", TestPaths.twofoldd, daemon.configPath]
        let child = try ChildProcess(argv, environment: environment, fds: [1: log, 2: log, 3: listener])
        defer { child.signal(SIGKILL); child.wait() }
        try notify.waitForReady(timeoutSeconds: 60, isRunning: { child.isRunning }, logPath: daemon.logPath)

        // The sandbox really applies to the daemon.
        let procStatus = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        func field(_ name: String) -> String {
            procStatus.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        #expect(field("Uid").split(whereSeparator: \.isWhitespace).allSatisfy { $0 == "\(dynamicUID)" }, "Uid: \(field("Uid"))")
        #expect(field("NoNewPrivs") == "1" && field("CapBnd") == "0000000000000000" && field("CapEff") == "0000000000000000")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/ns/net")
                != FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net"), "not in a network namespace of its own")

        // Root (sshd, an admin) enrolls the test user; the admin group member lists users (NSS group lookup).
        let app = try TestAuthenticator.random()
        let connection = try TwofoldConnection(socketPath: socketPath, timeoutSeconds: 10)
        let imported = try connection.request(ControlRequest.importEnrollment(user: me.name, source: .uri(app.uri(account: me.name))), as: ControlResponse.self)
        connection.close()
        #expect(imported == .imported(recoveryCodes: 0), "\(imported)\n\(daemon.log)")
        let list = try FrameCodec.encode(.request(Array(try JSONEncoder().encode(ControlRequest.listUsers(after: nil, limit: 5)))))
        let asAdmin = try runAs(admin, socketPath: socketPath, frame: list)
        #expect(asAdmin.contains("\"user\":\"\(me.name)\""), "\(asAdmin)\n\(daemon.log)")
        // The test user's own twofoldctl acts on its own account.
        let status = try run(me.setpriv + [TestPaths.twofoldctl, "status", "--socket", socketPath])
        #expect(status.status == 0 && status.output.split(separator: "\n").contains { $0.hasPrefix("User:") && $0.hasSuffix(" " + me.name) }, "\(status.output)")
        // A login for a member of the required group (NSS again): asked, and refused as not enrolled.
        let member = try LoginDialog.run(socketPath: socketPath, start: AuthStart(user: try TestUser.groupMember.name, service: "sshd")) { _, _ in nil }
        #expect(member.verdict == .denied, "\(member)\n\(daemon.log)")
        // UMask=0077 and StateDirectoryMode=0700: the key and the database are the daemon's alone.
        for file in ["twofold.key", "twofold.sqlite"] {
            var info = stat()
            #expect(stat(state + "/" + file, &info) == 0 && info.st_mode & 0o077 == 0 && info.st_uid == dynamicUID, "\(file)")
        }

        // TasksMax and MemoryMax have the room the unit's comment claims.
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/task").count) ?? 0
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let after = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        let peakKiB = after.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(whereSeparator: \.isWhitespace)[1]) } ?? 0
        // An event loop and a blocking-pool thread per core, libdispatch's pool (about one per core
        // plus a few overcommit threads, from Foundation), the main thread.
        #expect(threads > 0 && threads <= 4 * cores + 16, "\(threads) threads on \(cores) cores")
        #expect(peakKiB > 0 && peakKiB < 128 * 1024, "peak RSS \(peakKiB) KiB: a quarter of MemoryMax=512M at most")

        child.signal(SIGTERM)
        #expect(child.wait() == 0, "clean exit after SIGTERM\n\(daemon.log)")
    }
}

/// The `Key=Value` lines of a systemd unit file, by section (comments and blank lines skipped).
struct SystemdUnit {
    private var entries: [(section: String, key: String, value: String)] = []

    init(path: String) throws {
        var section = ""
        for raw in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") { section = String(line.dropFirst().dropLast()); continue }
            guard let eq = line.firstIndex(of: "=") else { throw HarnessError("\(path): not Key=Value: \(line)") }
            entries.append((section, line[..<eq].trimmingCharacters(in: .whitespaces), line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)))
        }
    }

    /// Every value of `key` in `section`, in order (systemd lets some keys repeat).
    func values(_ section: String, _ key: String) -> [String] {
        entries.filter { $0.section == section && $0.key == key }.map(\.value)
    }

    /// A size such as 512M (systemd's base-1024 suffixes), in bytes.
    static func bytes(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let last = text.last, let unit = units[last] { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }
}
