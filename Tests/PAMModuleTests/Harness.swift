// Test harness for the C PAM module: builds it with make, writes a PAM confdir,
// runs pam/tests/pam_driver (real libpam, pam_start_confdir) and plays a fake
// twofoldd on a Unix socket, speaking the framing by hand.

import Foundation
import Testing
import TwofoldTestSupport

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Wire constants and a tiny encoder (docs/protocol.md)

enum MsgType {
    static let authStart: UInt8 = 0x01
    static let answer: UInt8 = 0x02
    static let promptEchoOff: UInt8 = 0x11
    static let promptEchoOn: UInt8 = 0x12
    static let info: UInt8 = 0x13
    static let errorMsg: UInt8 = 0x14
    static let verdict: UInt8 = 0x20
    static let protocolError: UInt8 = 0x7F
}

enum Tag {
    static let user: UInt8 = 0x01
    static let service: UInt8 = 0x02
    static let rhost: UInt8 = 0x03
    static let tty: UInt8 = 0x04
    static let ruser: UInt8 = 0x05
    static let password: UInt8 = 0x06
    static let deadline: UInt8 = 0x07
    static let capabilities: UInt8 = 0x08
    static let text: UInt8 = 0x10
    static let payload: UInt8 = 0x11
    static let result: UInt8 = 0x20
}

enum Capability {
    static let binaryPayload: UInt32 = 0x1, fido2: UInt32 = 0x2
}

enum Verdict {
    static let success: UInt8 = 0, failure: UInt8 = 1, locked: UInt8 = 2, ignore: UInt8 = 3
    static let unavailable: UInt8 = 4, badRequest: UInt8 = 5, denied: UInt8 = 6
}

func be32(_ n: UInt32) -> [UInt8] {
    [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
     UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
}

/// One field: tag, u16 length, value. `length` overrides the real length (to lie).
func field(_ tag: UInt8, _ value: [UInt8], length: Int? = nil) -> [UInt8] {
    let n = length ?? value.count
    return [tag, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)] + value
}

func field(_ tag: UInt8, _ text: String) -> [UInt8] { field(tag, Array(text.utf8)) }

/// A whole frame: length word, version, type, fields.
func frame(_ type: UInt8, _ fields: [UInt8] = [], version: UInt8 = 1) -> [UInt8] {
    let body = [version, type] + fields
    return be32(UInt32(body.count)) + body
}

func textFrame(_ type: UInt8, _ text: String) -> [UInt8] { frame(type, field(Tag.text, text)) }

func verdictFrame(_ code: UInt8, text: String? = nil) -> [UInt8] {
    frame(MsgType.verdict, field(Tag.result, [code]) + (text.map { field(Tag.text, $0) } ?? []))
}

/// A frame the fake daemon received, split loosely (the fake trusts nothing but checks what it needs).
struct ReceivedFrame {
    let version: UInt8
    let type: UInt8
    let fields: [(tag: UInt8, value: [UInt8])]
    let wellFormed: Bool

    init(body: [UInt8]) {
        version = body.count > 0 ? body[0] : 0
        type = body.count > 1 ? body[1] : 0
        var out: [(UInt8, [UInt8])] = []
        var pos = 2
        var ok = body.count >= 2
        while ok && pos < body.count {
            guard body.count - pos >= 3 else { ok = false; break }
            let tag = body[pos]
            let len = Int(body[pos + 1]) << 8 | Int(body[pos + 2])
            pos += 3
            guard body.count - pos >= len else { ok = false; break }
            out.append((tag, Array(body[pos..<pos + len])))
            pos += len
        }
        fields = out
        wellFormed = ok
    }

    func values(_ tag: UInt8) -> [[UInt8]] { fields.filter { $0.tag == tag }.map(\.value) }

    /// The text of a tag that appears exactly once, else nil.
    func text(_ tag: UInt8) -> String? {
        let v = values(tag)
        guard v.count == 1 else { return nil }
        return String(decoding: v[0], as: UTF8.self)
    }
}

// MARK: - Fake daemon

/// One accepted connection, blocking reads bounded by a generous deadline.
final class Connection {
    let fd: Int32
    static let waitMillis: Int32 = 20_000

    init(fd: Int32) { self.fd = fd }

    enum ReadResult { case data([UInt8]), eof, failed(String) }

    private func waitReadable() -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&pfd, 1, Connection.waitMillis)
            if r < 0 && errno == EINTR { continue }
            return r > 0
        }
    }

    func readExactly(_ n: Int) -> ReadResult {
        var buf = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            guard waitReadable() else { return .failed("timed out waiting for the module") }
            let r = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
            if r == 0 { return got == 0 ? .eof : .failed("connection closed inside a frame") }
            if r < 0 {
                if errno == EINTR { continue }
                return .failed("recv: \(String(cString: strerror(errno)))")
            }
            got += r
        }
        return .data(buf)
    }

    enum FrameResult { case frame(ReceivedFrame), eof, failed(String) }

    func readFrame() -> FrameResult {
        switch readExactly(4) {
        case .eof: return .eof
        case .failed(let why): return .failed(why)
        case .data(let w):
            let len = Int(w[0]) << 24 | Int(w[1]) << 16 | Int(w[2]) << 8 | Int(w[3])
            guard len >= 2 && len <= 65_536 else { return .failed("module sent frame length \(len)") }
            switch readExactly(len) {
            case .data(let body): return .frame(ReceivedFrame(body: body))
            case .eof: return .failed("connection closed inside a frame")
            case .failed(let why): return .failed(why)
            }
        }
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let r = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if r < 0 {
                if errno == EINTR { continue }
                return false
            }
            off += r
        }
        return true
    }

    /// Waits until the module closes; true when it sent nothing more before closing.
    func closedWithoutData() -> Bool {
        guard waitReadable() else { return false }
        var byte: UInt8 = 0
        while true {
            let r = recv(fd, &byte, 1, 0)
            if r < 0 && errno == EINTR { continue }
            // A peer that closes with bytes of ours still unread resets the connection.
            return r == 0 || (r < 0 && errno == ECONNRESET)
        }
    }
}

/// A socket path in a fresh directory the module accepts: root's, mode 0755
/// (the module refuses a socket whose directory others may write to).
func temporarySocketPath() throws -> String {
    try makeTemporaryDirectory("tf-pam") + "/twofold.sock"
}

/// Removes the socket (if any) and its directory (if empty).
func removeSocketPath(_ path: String) {
    unlink(path)
    rmdir((path as NSString).deletingLastPathComponent)
}

func makeUnixAddress(_ path: String) -> sockaddr_un {
    var sa = sockaddr_un()
    sa.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &sa.sun_path) { raw in
        let bytes = Array(path.utf8)
        precondition(bytes.count < raw.count)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return sa
}

/// Creates a bound Unix socket at `path`; listens with `backlog` unless nil.
func boundSocket(_ path: String, backlog: Int32?) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket failed") }
    var sa = makeUnixAddress(path)
    let r = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard r == 0 else { close(fd); throw HarnessError("bind \(path) failed") }
    if let backlog, listen(fd, backlog) != 0 { close(fd); throw HarnessError("listen failed") }
    return fd
}

/// A fake twofoldd: accepts one connection on a background thread and runs a
/// script on it. The script reports problems through `expect`.
final class FakeDaemon: @unchecked Sendable {
    let path: String
    private let listenFD: Int32
    private let lock = NSLock()
    private var problems: [String] = []
    private let done = DispatchSemaphore(value: 0)

    init(path: String? = nil, _ script: @escaping @Sendable (Connection, FakeDaemon) -> Void) throws {
        self.path = try path ?? temporarySocketPath()
        listenFD = try boundSocket(self.path, backlog: 8)
        let thread = Thread { [self] in
            defer { done.signal() }
            var pfd = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Connection.waitMillis) == 1 else {
                expect(false, "the module never connected")
                return
            }
            let fd = accept(listenFD, nil, nil)
            guard fd >= 0 else {
                expect(false, "accept failed")
                return
            }
            defer { close(fd) }
            script(Connection(fd: fd), self)
        }
        thread.start()
    }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard !condition else { return }
        let m = message()
        lock.lock()
        problems.append(m)
        lock.unlock()
    }

    /// Waits for the script to finish and returns what it found wrong.
    func finish() -> [String] {
        let timedOut = done.wait(timeout: .now() + 60) == .timedOut
        close(listenFD)
        removeSocketPath(path)
        lock.lock()
        defer { lock.unlock() }
        return timedOut ? problems + ["the fake daemon's script did not finish"] : problems
    }

    /// Reads the AUTH_START and checks the usual items; returns it.
    @discardableResult
    func expectAuthStart(_ conn: Connection, user: String = "alice", service: String = "twofold-test",
                         password: String? = nil, ruser: String? = nil, capabilities: UInt32? = nil) -> ReceivedFrame? {
        guard case .frame(let f) = conn.readFrame() else {
            expect(false, "no AUTH_START frame")
            return nil
        }
        expect(f.wellFormed, "AUTH_START is not well formed")
        expect(f.version == 1, "AUTH_START version \(f.version)")
        expect(f.type == MsgType.authStart, "first frame type \(f.type), not AUTH_START")
        expect(f.text(Tag.user) == user, "USER is \(String(describing: f.text(Tag.user)))")
        expect(f.text(Tag.service) == service, "SERVICE is \(String(describing: f.text(Tag.service)))")
        expect(f.text(Tag.rhost) == "127.0.0.1", "RHOST is \(String(describing: f.text(Tag.rhost)))")
        expect(f.text(Tag.tty) == "ssh", "TTY is \(String(describing: f.text(Tag.tty)))")
        expect(f.values(Tag.ruser).count == (ruser == nil ? 0 : 1) && f.text(Tag.ruser) == ruser,
               "RUSER is \(f.values(Tag.ruser))")
        expect(f.values(Tag.password).count == (password == nil ? 0 : 1) && f.text(Tag.password) == password,
               "PASSWORD field mismatch: \(f.values(Tag.password).count) field(s)")
        expect(f.values(Tag.deadline).count == 1 && f.values(Tag.deadline).first?.count == 4,
               "DEADLINE is \(f.values(Tag.deadline)), not one 4-byte field")
        // The module declares what it can carry beyond text prompts: BINARY_PAYLOAD|FIDO2 when
        // built with libfido2's headers (unless nofido2), else nothing.
        let declared = capabilities ?? (PAMBuild.fido2 ? Capability.binaryPayload | Capability.fido2 : 0)
        expect(f.values(Tag.capabilities) == [be32(declared)],
               "CAPABILITIES is \(f.values(Tag.capabilities)), not one 4-byte field of \(declared)")
        let tags = f.fields.map(\.tag)
        expect(Set(tags).count == tags.count, "a tag appears twice in AUTH_START")
        return f
    }

    /// Reads one ANSWER to a key step (TEXT "", one PAYLOAD) and returns the key response.
    func expectKeyAnswer(_ conn: Connection) -> [UInt8]? {
        switch conn.readFrame() {
        case .frame(let f):
            expect(f.wellFormed && f.version == 1 && f.type == MsgType.answer, "expected ANSWER, got type \(f.type)")
            expect(f.values(Tag.text) == [[]], "a key ANSWER's TEXT is \(f.values(Tag.text)), not one empty field")
            expect(f.values(Tag.payload).count == 1, "a key ANSWER carries \(f.values(Tag.payload).count) PAYLOAD fields")
            return f.values(Tag.payload).first
        case .eof:
            expect(false, "connection closed instead of ANSWER")
        case .failed(let why):
            expect(false, "reading ANSWER: \(why)")
        }
        return nil
    }

    /// Reads one ANSWER and returns its text.
    func expectAnswer(_ conn: Connection) -> String? {
        switch conn.readFrame() {
        case .frame(let f):
            expect(f.wellFormed && f.version == 1 && f.type == MsgType.answer, "expected ANSWER, got type \(f.type)")
            expect(f.values(Tag.text).count == 1, "ANSWER carries \(f.values(Tag.text).count) TEXT fields")
            return f.text(Tag.text)
        case .eof:
            expect(false, "connection closed instead of ANSWER")
        case .failed(let why):
            expect(false, "reading ANSWER: \(why)")
        }
        return nil
    }
}


// MARK: - Building and running the driver

enum Build {
    /// pam_wrapper's pam_set_items.so (sets PAM_AUTHTOK from the environment).
    /// pam/tests/casefold_preload.so (built with the module): a case-insensitive getpwnam_r.
    static let casefoldPreload = PAMBuild.directory + "/tests/casefold_preload.so"

    static let setItemsModule: String? = {
        let fm = FileManager.default
        let dirs = ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? []).map { "/usr/lib/\($0)" } + ["/usr/lib", "/usr/lib64"]
        return dirs.map { "\($0)/pam_wrapper/pam_set_items.so" }.first { fm.fileExists(atPath: $0) }
    }()
}

/// A PAM confdir with one service file, removed on deinit.
///
/// libpam never returns PAM_IGNORE from a stack (a stack where every module
/// ignores fails with PAM_PERM_DENIED), so by default the module is stacked
/// to make its own return code visible:
///
///     auth [success=done ignore=ignore default=die] pam_twofold.so ...
///     auth optional pam_echo.so <marker>
///
/// Every code but PAM_IGNORE ends the stack with that code (die keeps it as
/// the stack's status); PAM_IGNORE falls through to pam_echo, which shows the
/// marker as INFO and succeeds. DriverRun turns that back into PAM_IGNORE.
final class PAMConfig {
    static let service = "twofold-test"
    static let ignoreMarker = "TWOFOLD_TEST_MODULE_RETURNED_PAM_IGNORE"
    let dir: String

    /// `control` nil: the transparent stack above; else `auth <control> pam_twofold.so ...` then `after`.
    init(socket: String, timeout: Int = 5, options: String = "", before: [String] = [], rawOptions: String? = nil,
         control: String? = nil, after: [String] = []) throws {
        dir = NSTemporaryDirectory() + "tf-pam-conf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let args = rawOptions ?? "socket=\(socket) timeout=\(timeout) \(options)"
        let module = "\(PAMBuild.module) \(args)"
        let stack: [String]
        if let control {
            stack = ["auth \(control) \(module)"] + after
        } else {
            stack = ["auth [success=done ignore=ignore default=die] \(module)",
                     "auth optional pam_echo.so \(PAMConfig.ignoreMarker)"]
        }
        let text = (before + stack).joined(separator: "\n") + "\n"
        try text.write(toFile: dir + "/" + PAMConfig.service, atomically: true, encoding: .utf8)
    }

    /// A service file of exactly these lines.
    init(lines: [String]) throws {
        dir = NSTemporaryDirectory() + "tf-pam-conf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/" + PAMConfig.service, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}

struct DriverRun: CustomStringConvertible {
    let lines: [String]
    let stderr: String
    let status: Int32
    let seconds: Double

    /// The stack's RESULT as "<number> <PAM_NAME>", as printed by the driver.
    var stackResult: String? {
        lines.last { $0.hasPrefix("RESULT ") }.map { String($0.dropFirst("RESULT ".count)) }
    }
    private var sawIgnoreMarker: Bool { lines.contains("INFO " + PAMConfig.ignoreMarker) }
    /// The module's own return code with the transparent stack (see PAMConfig).
    var result: String? {
        sawIgnoreMarker && stackResult == "0 PAM_SUCCESS" ? "25 PAM_IGNORE" : stackResult
    }
    /// The conversation lines the module caused (no RESULT, no marker).
    var dialog: [String] {
        lines.filter { !$0.hasPrefix("RESULT ") && $0 != "INFO " + PAMConfig.ignoreMarker }
    }

    var description: String { "status \(status), stdout \(lines), stderr:\n\(stderr)" }
}

/// Runs pam_driver CONFDIR twofold-test USER with `stdin` (nil: closed at once).
func runDriver(_ config: PAMConfig, user: String = "alice", stdin: [UInt8]? = nil,
               environment: [String: String] = [:]) throws -> DriverRun {
    try PAMBuild.require()
    // All input is in the pipe before launch and its write end closed: no interleaving, no SIGPIPE.
    var input: [Int32] = [0, 0]
    var output: [Int32] = [0, 0]
    guard pipe(&input) == 0, pipe(&output) == 0 else { throw HarnessError("pipe: \(String(cString: strerror(errno)))") }
    for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    if let stdin, !stdin.isEmpty { _ = stdin.withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) } }
    close(input[1])
    let errPath = config.dir + "/driver.stderr"
    let err = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    let start = DispatchTime.now()
    let child: ChildProcess
    do {
        child = try ChildProcess([PAMBuild.driver, config.dir, PAMConfig.service, user],
                                 environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 },
                                 fds: [0: input[0], 1: output[1], 2: err])
    } catch {
        [input[0], output[0], output[1], err].forEach { close($0) }
        throw error
    }
    [input[0], output[1], err].forEach { close($0) }
    // A backstop only: the module's own timeouts end every dialog long before this.
    DispatchQueue.global().asyncAfter(deadline: .now() + 60) { child.signal(SIGKILL) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(output[0], &chunk, chunk.count)
        if n > 0 { data += chunk[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    close(output[0])
    let status = child.wait()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    let text = String(decoding: data, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    let stderrText = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return DriverRun(lines: lines, stderr: stderrText, status: status, seconds: seconds)
}

/// Answer lines for the driver's stdin.
func answers(_ lines: String...) -> [UInt8] {
    Array(lines.map { $0 + "\n" }.joined().utf8)
}

/// Reads one line (without the newline) from `fd`, waiting at most `millis`; nil on EOF or timeout.
func readLine(_ fd: Int32, millis: Int32 = 20_000) -> String? {
    var bytes: [UInt8] = []
    while true {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&pfd, 1, millis)
        if r < 0 && errno == EINTR { continue }
        guard r > 0 else { return nil }
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n < 0 && errno == EINTR { continue }
        guard n == 1 else { return nil }
        if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// True when a connection is waiting in the listen queue of `listener` (the module connected).
func hasPendingConnection(_ listener: Int32) -> Bool {
    var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
    return poll(&pfd, 1, 0) == 1
}
