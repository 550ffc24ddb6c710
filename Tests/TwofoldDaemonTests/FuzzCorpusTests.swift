import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets' seed corpora (fuzz/corpus, docs/testing.md "Fuzzing") are recorded here from real
/// dialogs: the real twofoldd, the real module through real libpam (pam_driver) with the fake FIDO2 key
/// under libfido2 for the key step, and the real twofoldctl, each talking to the daemon through a
/// recording proxy on its socket. Every run records and checks what it recorded (each dialog decodes and
/// ends as its scenario says), and checks that the committed corpus holds exactly the files this recorder
/// makes (a scenario added without recording again fails). `scripts/record-fuzz-corpus.sh` runs it with
/// TWOFOLD_RECORD_CORPUS=1, which writes the files into fuzz/corpus.
@Suite("Fuzz seed corpus recorded from real dialogs")
struct FuzzCorpusTests {
    static let corpus = TestPaths.root + "/fuzz/corpus"
    /// The corpus directories this recorder fills (one per fuzz target).
    static let targets = ["wire", "module", "frame", "control", "keystep"]

    @Test("logins through the module and twofoldctl's requests, recorded on the socket: each decodes and ends as expected; the committed corpus is what the recorder makes")
    func record() throws {
        try PAMBuild.require()
        let daemon = try KeyLoginTests.daemon()
        let proxy = try RecordingProxy(upstream: daemon.socketPath)
        defer { proxy.close() }
        let pam = try PAMConfig(socket: proxy.path)
        var recorder = CorpusRecorder()

        let ana = try daemon.provision("fuzz-ana")
        let kim = try daemon.provision("fuzz-kim")
        var key: FakeFidoKey?
        if PAMBuild.fido2 {
            key = try ModuleKeyLoginTests.freshKey()
            try ModuleKeyLoginTests.register(key!, user: "fuzz-kim", on: daemon)
        }
        defer { key?.remove() }

        func login(_ name: String, _ user: String, answers: [String], environment: [String: String]? = nil,
                   expect result: String, daemonSends expected: [String]) throws {
            let outcome = try pam.authenticate(user, answers: answers, environment: environment)
            #expect(outcome.result == result, "\(name): \(outcome.lines)")
            let transcripts = proxy.take()
            #expect(transcripts.count == 1, "\(name): \(transcripts.count) connections")
            for transcript in transcripts {
                let (toDaemon, fromDaemon) = try transcript.decoded()
                #expect(toDaemon.first?.type == .authStart, "\(name): \(toDaemon)")
                #expect(fromDaemon.map(Self.describe) == expected, "\(name): \(fromDaemon)")
            }
            recorder.add(name, transcripts, login: true)
        }
        func ctl(_ name: String, _ arguments: [String]) throws {
            var environment = ChildProcess.currentEnvironment()
            environment.removeValue(forKey: "TWOFOLD_SOCKET")
            let (status, output) = try run([TestPaths.twofoldctl] + arguments + ["--socket", proxy.path], environment: environment)
            #expect(status == 0, "\(name): \(output)")
            let transcripts = proxy.take()
            #expect(!transcripts.isEmpty, "\(name): no connection")
            for transcript in transcripts {
                let (requests, responses) = try transcript.decoded()
                #expect(!requests.isEmpty && requests.allSatisfy { $0.type == .request }, "\(name): \(requests)")
                #expect(responses.count == requests.count && responses.allSatisfy { $0.type == .response }, "\(name): \(responses)")
            }
            recorder.add(name, transcripts, login: false)
        }

        try login("login-code", "fuzz-ana", answers: [ana.code()], expect: "PAM_SUCCESS", daemonSends: ["PROMPT_ECHO_OFF", "VERDICT SUCCESS"])
        try login("login-wrong-code", "fuzz-ana", answers: [ana.wrongCode()], expect: "PAM_AUTH_ERR",
                  daemonSends: ["PROMPT_ECHO_OFF", "VERDICT FAILURE"])
        // PAM_IGNORE from the only module of the stack: libpam makes it PAM_PERM_DENIED.
        try login("login-not-enrolled", "fuzz-bob", answers: [], expect: "PAM_PERM_DENIED", daemonSends: ["VERDICT IGNORE"])
        try ctl("ctl-user-require", ["user", "require", "fuzz-cid"])
        try login("login-denied", "fuzz-cid", answers: [], expect: "PAM_AUTH_ERR", daemonSends: ["ERROR_MSG", "VERDICT DENIED"])
        try ctl("ctl-policy-set", ["policy", "set", "--unenrolled", "enroll", "--yes"])
        // Enrollment at login: the QR code and the key as text in the prompt, then a code that is wrong.
        try login("login-enroll", "fuzz-cid", answers: ["000000"], expect: "PAM_AUTH_ERR",
                  daemonSends: ["PROMPT_ECHO_ON", "ERROR_MSG", "VERDICT FAILURE"])
        if let key {
            try login("login-key", "fuzz-kim", answers: [], environment: key.environment(), expect: "PAM_SUCCESS",
                      daemonSends: ["PROMPT_ECHO_OFF+PAYLOAD", "VERDICT SUCCESS"])
            try login("login-key-absent", "fuzz-kim", answers: [kim.code()], environment: key.environment(["TWOFOLD_FAKE_FIDO": "absent"]),
                      expect: "PAM_SUCCESS", daemonSends: ["PROMPT_ECHO_OFF+PAYLOAD", "ERROR_MSG", "PROMPT_ECHO_OFF", "VERDICT SUCCESS"])
        }
        try ctl("ctl-status", ["status", "--user", "fuzz-ana"])
        try ctl("ctl-user-show", ["user", "show", "fuzz-kim"])
        try ctl("ctl-users", ["users"])
        try ctl("ctl-factors", ["factors", "list", "--user", "fuzz-kim"])
        try ctl("ctl-key-list", ["key", "list", "--all"])
        try ctl("ctl-policy-show", ["policy", "show"])
        try ctl("ctl-policy-explain", ["policy", "explain", "fuzz-cid", "--service", "sshd"])
        try ctl("ctl-audit", ["audit", "--limit", "40"])
        try ctl("ctl-metrics", ["metrics"])
        // A lock: one failure is enough once the policy says so.
        try ctl("ctl-policy-max-failures", ["policy", "set", "--max-failures", "1", "--yes"])
        try login("login-lock-failure", "fuzz-ana", answers: [ana.wrongCode()], expect: "PAM_MAXTRIES",
                  daemonSends: ["PROMPT_ECHO_OFF", "ERROR_MSG", "VERDICT LOCKED"])
        try login("login-locked", "fuzz-ana", answers: [], expect: "PAM_MAXTRIES", daemonSends: ["ERROR_MSG", "VERDICT LOCKED"])
        try ctl("ctl-user-unlock", ["user", "unlock", "fuzz-ana"])

        if ProcessInfo.processInfo.environment["TWOFOLD_RECORD_CORPUS"] == "1" {
            try recorder.write(to: Self.corpus, targets: Self.targets)
            print("fuzz corpus: wrote \(recorder.files.count) files to \(Self.corpus)")
        } else {
            // Without the key step (no libfido2 headers) its files cannot be recorded here; they stay committed.
            for target in Self.targets {
                let committed = Set(FileManager.default.enumerator(atPath: Self.corpus + "/" + target)?.compactMap { $0 as? String } ?? [])
                let made = Set(recorder.files.keys.filter { $0.hasPrefix(target + "/") }.map { String($0.dropFirst(target.count + 1)) })
                let missing = made.subtracting(committed), stale = committed.subtracting(made).filter { key != nil || !$0.hasPrefix("login-key") }
                #expect(missing.isEmpty && stale.isEmpty,
                        "fuzz/corpus/\(target) is not what the recorder makes (run scripts/record-fuzz-corpus.sh): missing \(missing.sorted()), not recorded \(stale.sorted())")
            }
        }
    }

    /// `VERDICT SUCCESS`, `PROMPT_ECHO_OFF+PAYLOAD`, `INFO`.
    static func describe(_ message: Message) -> String {
        if case .verdict(let code, _) = message { return "VERDICT \(code.name)" }
        return message.type.name + (message.payload == nil ? "" : "+PAYLOAD")
    }
}

/// What the recorder keeps of each scenario, as files by corpus path (`frame/login-code-1.daemon`).
struct CorpusRecorder {
    private(set) var files: [String: [UInt8]] = [:]
    /// Larger recordings are left out: seeds stay small.
    static let maxFile = 32 << 10

    mutating func add(_ scenario: String, _ transcripts: [RecordingProxy.Transcript], login: Bool) {
        for (n, transcript) in transcripts.enumerated() {
            let base = "\(scenario)-\(n + 1)"
            put("frame/\(base).client", transcript.toDaemon)
            put("frame/\(base).daemon", transcript.fromDaemon)
            if login {
                // What the module reads: the daemon's side of a login dialog.
                put("wire/\(base).daemon", transcript.fromDaemon)
                put("module/\(base).daemon", transcript.fromDaemon)
            }
            guard let (toDaemon, fromDaemon) = try? transcript.decoded() else { continue }
            // Named by the message's place in its stream.
            for (k, message) in toDaemon.enumerated() {
                switch message {
                case .request(let json): put("control/\(base)-request-\(k + 1).json", json)
                case .answer(_, let payload?): put("keystep/\(base)-keyresponse-\(k + 1).bin", payload)
                default: break
                }
            }
            for (k, message) in fromDaemon.enumerated() {
                switch message {
                case .response(let json): put("control/\(base)-response-\(k + 1).json", json)
                case .promptEchoOff(_, let payload?):
                    put("keystep/\(base)-keyrequest-\(k + 1).bin", payload)
                    put("wire/\(base)-keyrequest-\(k + 1).bin", payload)
                default: break
                }
            }
        }
    }

    private mutating func put(_ path: String, _ bytes: [UInt8]) {
        guard !bytes.isEmpty, bytes.count <= Self.maxFile else { return }
        files[path] = bytes
    }

    /// Replaces every file of the targets' directories with this recording.
    func write(to root: String, targets: [String]) throws {
        let fm = FileManager.default
        for target in targets {
            let directory = root + "/" + target
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: directory) where !name.hasPrefix(".") {
                try fm.removeItem(atPath: directory + "/" + name)
            }
        }
        for (path, bytes) in files {
            guard fm.createFile(atPath: root + "/" + path, contents: Data(bytes)) else { throw HarnessError("cannot write \(path)") }
        }
    }
}

/// A Unix socket in front of a daemon's that passes every byte through and keeps each connection's two
/// streams. Threads and blocking I/O: a connection at a time is what the recorder needs.
final class RecordingProxy: @unchecked Sendable {
    struct Transcript {
        var index: Int
        var toDaemon: [UInt8] = []
        var fromDaemon: [UInt8] = []

        /// Both streams as messages; throws if either does not decode to whole messages.
        func decoded() throws -> (toDaemon: [Message], fromDaemon: [Message]) {
            func messages(_ bytes: [UInt8]) throws -> [Message] {
                var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
                decoder.append(bytes)
                var out: [Message] = []
                while let message = try decoder.next() { out.append(message) }
                guard decoder.bufferedByteCount == 0 else { throw HarnessError("a stream ends inside a frame") }
                return out
            }
            return (try messages(toDaemon), try messages(fromDaemon))
        }
    }

    let directory: String
    let path: String
    let upstream: String
    private let listener: Int32
    private let condition = NSCondition()
    private var active = 0
    private var accepted = 0
    private var done: [Transcript] = []
    private var closed = false

    init(upstream: String) throws {
        self.upstream = upstream
        directory = try makeTemporaryDirectory("tf-proxy")
        path = directory + "/proxy.sock"
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o666) == 0, listen(listener, 16) == 0 else {
            throw HarnessError("proxy socket \(path): \(String(cString: strerror(errno)))")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// The transcripts of the connections made since the last call, once every one of them has ended.
    func take() -> [Transcript] {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(30)
        while active > 0 && condition.wait(until: deadline) {}
        let out = done.sorted { $0.index < $1.index }
        done = []
        return out
    }

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client >= 0 { _ = fcntl(client, F_SETFD, FD_CLOEXEC) }
            condition.lock()
            if closed { condition.unlock(); if client >= 0 { Glibc.close(client) }; return }
            if client < 0 { condition.unlock(); if errno == EINTR { continue }; return }
            active += 1
            accepted += 1
            let index = accepted
            condition.unlock()
            let thread = Thread { [self] in pump(client, index: index) }
            thread.start()
        }
    }

    /// Copies both ways until both sides have closed; an end of one side is passed on as a half close.
    private func pump(_ client: Int32, index: Int) {
        var transcript = Transcript(index: index)
        if let server = try? RawSocket.connect(upstream) {
            var open = [true, true] // client → daemon, daemon → client
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let fds = [client, server]
            while open[0] || open[1] {
                var pfds = (0..<2).map { pollfd(fd: open[$0] ? fds[$0] : -1, events: Int16(POLLIN), revents: 0) }
                guard poll(&pfds, 2, 30_000) > 0 else { break }
                for side in 0..<2 where open[side] && pfds[side].revents != 0 {
                    let n = recv(fds[side], &buffer, buffer.count, 0)
                    if n <= 0 {
                        open[side] = false
                        shutdown(fds[1 - side], Int32(SHUT_WR))
                        continue
                    }
                    if side == 0 { transcript.toDaemon += buffer[0..<n] } else { transcript.fromDaemon += buffer[0..<n] }
                    RawSocket.send(fds[1 - side], Array(buffer[0..<n]))
                }
            }
            Glibc.close(server)
        }
        Glibc.close(client)
        condition.lock()
        done.append(transcript)
        active -= 1
        condition.broadcast()
        condition.unlock()
    }
}
