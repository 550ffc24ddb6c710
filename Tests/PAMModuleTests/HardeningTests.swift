// The module's hardening (issue "Hardening"): failing open only when no dialog
// could start, the DEADLINE it sends, who it talks to (socket directory,
// SO_PEERCRED), bounds on a dialog, canonical user names. Real libpam through
// pam/tests/pam_driver, fake daemons from Harness.swift.

import Foundation
import Testing
import TwofoldTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The dedicated unprivileged test account (scripts/test-setup.sh creates it).
private let testUser = "twofold-test"

private func testAccount() throws -> (uid: uid_t, gid: gid_t) {
    let pw = try #require(getpwnam(testUser), "no account \(testUser): create it (scripts/test-setup.sh)")
    return (pw.pointee.pw_uid, pw.pointee.pw_gid)
}

/// `auth required pam_twofold.so ...` then `auth optional pam_permit.so`: the stack of
/// pam/examples, where a PAM_IGNORE from the module lets the user in.
private func permitStack(socket: String, options: String, timeout: Int = 5) throws -> PAMConfig {
    try PAMConfig(socket: socket, timeout: timeout, options: options, control: "required",
                  after: ["auth optional pam_permit.so"])
}

@Suite("PAM module hardening")
struct HardeningTests {

    // MARK: Failing open only when no dialog could start

    struct Fault: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]      // sent after the answer; then the fake waits for the module to close
        let close: Bool         // shut the write side after the bytes (EOF)
        let reason: String
        var testDescription: String { name }
    }

    static let faultsAfterAPrompt: [Fault] = [
        Fault(name: "silence past timeout=", bytes: [], close: false, reason: "timed out"),
        Fault(name: "EOF", bytes: [], close: true, reason: "closed"),
        Fault(name: "garbage", bytes: Array("garbage!".utf8), close: false, reason: "frame length"),
        Fault(name: "PROTOCOL_ERROR", bytes: textFrame(MsgType.protocolError, "confused"), close: false,
              reason: "PROTOCOL_ERROR from the daemon: confused"),
        Fault(name: "VERDICT UNAVAILABLE", bytes: verdictFrame(Verdict.unavailable, text: "store down"), close: false,
              reason: "VERDICT UNAVAILABLE, not as the first message: store down"),
    ]

    @Test("After a prompt, any daemon failure is PAM_AUTH_ERR under failmode=open and closed; pam_permit after it does not let the user in",
          arguments: faultsAfterAPrompt, ["failmode=open", "failmode=closed"])
    func failureAfterDialogStarted(_ fault: Fault, failmode: String) throws {
        try PAMBuild.require()
        let fake = try FakeDaemon { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(textFrame(MsgType.promptEchoOff, "Code: "))
            fake.expect(fake.expectAnswer(conn) == "999999", "answer")
            conn.send(fault.bytes)
            if fault.close { shutdown(conn.fd, Int32(SHUT_WR)) }
            fake.expect(conn.closedWithoutData(), "the module sent something after the fault")
        }
        let config = try permitStack(socket: fake.path, options: failmode, timeout: 1)
        let run = try runDriver(config, stdin: answers("999999"))
        #expect(fake.finish().isEmpty)
        #expect(run.stackResult == "7 PAM_AUTH_ERR", "\(run)")
        #expect(run.dialog == ["ECHO_OFF Code: "], "\(run)")
        #expect(run.stderr.contains(fault.reason), "\(run)")
        #expect(run.stderr.contains("dialog started: failing closed whatever failmode"), "\(run)")
        #expect(!run.stderr.contains("twofoldd unavailable"), "\(run)")
    }

    @Test("VERDICT UNAVAILABLE as the first message: PAM_IGNORE with failmode=open, PAM_AUTHINFO_UNAVAIL closed",
          arguments: ["failmode=open", ""])
    func unavailableFirst(_ options: String) throws {
        let run = try dialog(options: options) { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(verdictFrame(Verdict.unavailable, text: "store down"))
        }
        #expect(run.result == (options.isEmpty ? "9 PAM_AUTHINFO_UNAVAIL" : "25 PAM_IGNORE"), "\(run)")
        #expect(run.stderr.contains("twofoldd unavailable (VERDICT UNAVAILABLE: store down)"), "\(run)")
    }

    @Test("Silence to AUTH_START is unavailable: PAM_IGNORE with failmode=open, pam_permit lets the user in")
    func silenceToAuthStartFailOpen() throws {
        try PAMBuild.require()
        let fake = try FakeDaemon { conn, fake in
            fake.expectAuthStart(conn)
            fake.expect(conn.closedWithoutData(), "the module did not close after its timeout")
        }
        let config = try permitStack(socket: fake.path, options: "failmode=open", timeout: 1)
        let run = try runDriver(config)
        #expect(fake.finish().isEmpty)
        #expect(run.stackResult == "0 PAM_SUCCESS", "\(run)")
        #expect(run.stderr.contains("twofoldd unavailable (timed out)"), "\(run)")
    }

    @Test("A missing socket directory is unavailable (daemon not installed): PAM_AUTHINFO_UNAVAIL; failmode=open → PAM_IGNORE",
          arguments: ["", "failmode=open"])
    func missingSocketDirectory(_ options: String) throws {
        let dir = try makeTemporaryDirectory("tf-pam")
        rmdir(dir)
        let config = try PAMConfig(socket: dir + "/twofold.sock", options: options)
        let run = try runDriver(config)
        #expect(run.result == (options.isEmpty ? "9 PAM_AUTHINFO_UNAVAIL" : "25 PAM_IGNORE"), "\(run)")
        #expect(run.stderr.contains("its directory does not exist"), "\(run)")
    }

    // MARK: DEADLINE

    @Test("AUTH_START carries DEADLINE = timeout × 1000 ms as a 4-byte big-endian u32", arguments: [1, 7, 3600])
    func deadlineField(_ timeout: Int) throws {
        let run = try dialog(timeout: timeout) { conn, fake in
            guard let start = fake.expectAuthStart(conn) else { return }
            let values = start.values(Tag.deadline)
            fake.expect(values == [be32(UInt32(timeout * 1000))], "DEADLINE is \(values), timeout=\(timeout)")
            conn.send(verdictFrame(Verdict.success))
        }
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    // MARK: Bounds on a dialog

    @Test("At most 64 daemon messages per dialog, the verdict included", arguments: [
        (infos: 63, expected: "0 PAM_SUCCESS"),
        (infos: 64, expected: "7 PAM_AUTH_ERR"),
        (infos: 65, expected: "7 PAM_AUTH_ERR"),
    ])
    func messageBound(_ c: (infos: Int, expected: String)) throws {
        let run = try dialog(options: "failmode=open") { conn, fake in
            fake.expectAuthStart(conn)
            var bytes: [UInt8] = []
            for i in 0..<c.infos { bytes += textFrame(MsgType.info, "notice \(i)") }
            conn.send(bytes + verdictFrame(Verdict.success))
            fake.expect(conn.closedWithoutData(), "the module sent something")
        }
        #expect(run.result == c.expected, "\(run)")
        #expect(run.dialog.count == min(c.infos, 64), "\(run.dialog.count) messages shown")
        if c.expected != "0 PAM_SUCCESS" {
            #expect(run.stderr.contains("no verdict within 64 messages"), "\(run)")
        }
    }

    @Test("dialog_timeout bounds the whole dialog even when each message comes within timeout=",
          arguments: [(dialogTimeout: 1, expected: "7 PAM_AUTH_ERR"), (dialogTimeout: 10, expected: "0 PAM_SUCCESS")])
    func dialogTimeout(_ c: (dialogTimeout: Int, expected: String)) throws {
        // The delays are the fault under test (a daemon trickling messages), not a wait for readiness.
        let run = try dialog(options: "failmode=open dialog_timeout=\(c.dialogTimeout)", timeout: 5) { conn, fake in
            fake.expectAuthStart(conn)
            for i in 0..<3 {
                conn.send(textFrame(MsgType.info, "step \(i)"))
                usleep(600_000)
            }
            conn.send(verdictFrame(Verdict.success))
            if c.expected != "0 PAM_SUCCESS" {
                fake.expect(conn.closedWithoutData(), "the module sent something")
            }
        }
        #expect(run.result == c.expected, "\(run)")
        if c.expected != "0 PAM_SUCCESS" {
            #expect(run.stderr.contains("longer than dialog_timeout=1 s"), "\(run)")
            #expect(run.seconds < 1.9, "the module waited \(run.seconds) s past its dialog_timeout")
        }
    }

    // MARK: Who the module talks to: the socket's directory

    struct DirCase: Sendable, CustomTestStringConvertible {
        let name: String
        let options: String
        let log: String
        /// Makes the socket's directory (root-owned, 0755, inside `base`, itself root-owned
        /// 0755 inside /tmp) unacceptable; returns the socket path to configure.
        let spoil: @Sendable (_ base: String, _ dir: String) throws -> String
        var testDescription: String { name }
    }

    static let badDirectories: [DirCase] = [
        DirCase(name: "directory mode 0777", options: "", log: "writable by group or others (mode 0777)") { _, dir in
            chmod(dir, 0o777); return dir + "/twofold.sock"
        },
        DirCase(name: "directory mode 0775", options: "", log: "writable by group or others (mode 0775)") { _, dir in
            chmod(dir, 0o775); return dir + "/twofold.sock"
        },
        DirCase(name: "sticky 1777 directory (like /tmp itself)", options: "", log: "writable by group or others (mode 1777)") { _, dir in
            chmod(dir, 0o1777); return dir + "/twofold.sock"
        },
        DirCase(name: "directory owned by the test user", options: "", log: "owned by uid") { _, dir in
            let a = try testAccount()
            chown(dir, a.uid, a.gid); return dir + "/twofold.sock"
        },
        DirCase(name: "directory owned by the test user, daemon_user=root", options: "daemon_user=root", log: "owned by uid") { _, dir in
            let a = try testAccount()
            chown(dir, a.uid, a.gid); return dir + "/twofold.sock"
        },
        DirCase(name: "ancestor writable by others, not sticky", options: "", log: "writable by group or others (mode 0777)") { base, dir in
            chmod(base, 0o777); return dir + "/twofold.sock"
        },
        DirCase(name: "ancestor owned by the test user", options: "", log: "owned by uid") { base, dir in
            let a = try testAccount()
            chown(base, a.uid, a.gid); return dir + "/twofold.sock"
        },
        DirCase(name: "the directory is a symlink", options: "", log: "a symlink") { base, dir in
            symlink(dir, base + "/link"); return base + "/link/twofold.sock"
        },
        DirCase(name: "an ancestor is a symlink", options: "", log: "a symlink") { base, dir in
            symlink(base, base + "/up"); return base + "/up/" + (dir as NSString).lastPathComponent + "/twofold.sock"
        },
    ]

    @Test("A socket directory others could write to is refused: PAM_AUTH_ERR even with failmode=open, no connect",
          arguments: badDirectories)
    func badSocketDirectory(_ c: DirCase) throws {
        try PAMBuild.require()
        let base = try makeTemporaryDirectory("tf-pam")
        defer { _ = try? ChildProcess.run(["/bin/rm", "-rf", base]) }
        let dir = base + "/d"
        #expect(mkdir(dir, 0o755) == 0)
        chmod(dir, 0o755)
        let listener = try boundSocket(dir + "/twofold.sock", backlog: 8)
        defer { close(listener) }
        let path = try c.spoil(base, dir)
        let config = try PAMConfig(socket: path, options: "failmode=open \(c.options)")
        let run = try runDriver(config)
        #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
        #expect(run.stderr.contains("refusing socket \(path)"), "\(run)")
        #expect(run.stderr.contains(c.log), "\(run)")
        #expect(!hasPendingConnection(listener), "the module connected to a socket it should have refused")
    }

    @Test("A socket directory owned by daemon_user is accepted (here with a root daemon)")
    func directoryOwnedByDaemonUser() throws {
        let a = try testAccount()
        let dir = try makeTemporaryDirectory("tf-pam")
        chown(dir, a.uid, a.gid)
        let fake = try FakeDaemon(path: dir + "/twofold.sock") { conn, fake in
            fake.expectAuthStart(conn)
            conn.send(verdictFrame(Verdict.success))
        }
        let config = try PAMConfig(socket: fake.path, options: "daemon_user=\(testUser)")
        let run = try runDriver(config)
        #expect(fake.finish().isEmpty)
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }

    // MARK: Who the module talks to: SO_PEERCRED

    /// A listener run as the test user: it binds and listens in a directory of its own, prints
    /// "ready", answers one AUTH_START with VERDICT SUCCESS ("answered") or sees the module
    /// close first ("closed"). The test then moves its socket into a root-owned 0755 directory,
    /// so only the peer's uid is wrong.
    private static let impostorScript = """
        import socket, struct, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sys.argv[1]); s.listen(1)
        print("ready", flush=True)
        c, _ = s.accept(); c.settimeout(20)
        def read(n):
            b = b""
            while len(b) < n:
                x = c.recv(n - len(b))
                if not x: return None
                b += x
            return b
        w = read(4)
        if w is not None and read(struct.unpack(">I", w)[0]) is not None:
            c.sendall(bytes([0, 0, 0, 6, 1, 0x20, 0x20, 0, 1, 0]))
            print("answered", flush=True)
        else:
            print("closed", flush=True)
        """

    @Test("A socket served by a non-root process: PAM_AUTH_ERR even with failmode=open, nothing sent; accepted with daemon_user=",
          arguments: ["", "daemon_user=twofold-test"])
    func impostor(_ options: String) throws {
        try PAMBuild.require()
        let a = try testAccount()
        let own = try makeTemporaryDirectory("tf-imp")
        chown(own, a.uid, a.gid)
        let dir = try makeTemporaryDirectory("tf-pam")
        defer { _ = try? ChildProcess.run(["/bin/rm", "-rf", own, dir]) }
        var out: [Int32] = [0, 0]
        guard pipe(&out) == 0 else { throw HarnessError("pipe") }
        defer { close(out[0]) }
        let child = try ChildProcess(["/usr/bin/setpriv", "--reuid=\(a.uid)", "--regid=\(a.gid)", "--clear-groups", "--",
                                      "/usr/bin/python3", "-c", Self.impostorScript, own + "/s"],
                                     environment: ["PATH": "/usr/bin:/bin"], fds: [1: out[1]])
        close(out[1])
        defer { child.signal(SIGKILL); child.wait() }
        try #require(readLine(out[0]) == "ready", "the listener did not start")
        let path = dir + "/twofold.sock"
        try #require(rename(own + "/s", path) == 0, "rename: \(String(cString: strerror(errno)))")

        let config = try PAMConfig(socket: path, options: "failmode=open \(options)")
        let run = try runDriver(config)
        let listenerSaw = readLine(out[0])
        if options.isEmpty {
            #expect(run.result == "7 PAM_AUTH_ERR", "\(run)")
            #expect(run.stderr.contains("refusing socket \(path): it is served by uid \(a.uid)"), "\(run)")
            #expect(listenerSaw == "closed", "the impostor got \(String(describing: listenerSaw))")
        } else {
            #expect(run.result == "0 PAM_SUCCESS", "\(run)")
            #expect(listenerSaw == "answered", "the listener got \(String(describing: listenerSaw))")
        }
    }

    // MARK: Canonical user names

    @Test("USER is the account's canonical name when it exists, else the name as given", arguments: [
        (given: "root", preload: false, sent: "root"),
        (given: "ROOT", preload: false, sent: "ROOT"),         // no such account: as given
        (given: "ROOT", preload: true, sent: "root"),          // a case-insensitive directory finds root
        (given: "NoSuchUser", preload: true, sent: "NoSuchUser"),
    ])
    func canonicalUser(_ c: (given: String, preload: Bool, sent: String)) throws {
        try PAMBuild.require()
        let fake = try FakeDaemon { conn, fake in
            fake.expectAuthStart(conn, user: c.sent)
            conn.send(verdictFrame(Verdict.success))
        }
        let config = try PAMConfig(socket: fake.path)
        let run = try runDriver(config, user: c.given,
                                environment: c.preload ? ["LD_PRELOAD": Build.casefoldPreload] : [:])
        #expect(fake.finish().isEmpty, "\(run)")
        #expect(run.result == "0 PAM_SUCCESS", "\(run)")
    }
}
