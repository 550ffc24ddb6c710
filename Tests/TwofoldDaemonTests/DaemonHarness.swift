import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldCrypto
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

typealias Paths = TestPaths

extension DaemonProcess {
    /// Provisions `user` with a fresh random TOTP secret through the admin import request.
    func provision(_ user: String, parameters: OTPParameters = OTPParameters()) throws -> TestAccount {
        let app = TestAuthenticator(secret: try OTPSecret.generate(), parameters: parameters)
        let response = try control(.importEnrollment(user: user, source: .uri(app.uri(account: user, issuer: "Test"))))
        guard response == .imported(recoveryCodes: 0) else { throw HarnessError("import failed: \(response)") }
        return TestAccount(user: user, app: app)
    }

    /// Runs a login dialog answering every prompt with `answer`.
    func login(_ user: String, answer: String?, service: String = "sshd") throws -> LoginDialog.Outcome {
        try LoginDialog.run(socketPath: socketPath, start: AuthStart(user: user, service: service, rhost: "127.0.0.1", tty: "ssh"),
                            timeoutSeconds: 10) { _, _ in answer }
    }
}

/// A provisioned user and the app that holds its secret.
struct TestAccount: Sendable {
    var user: String
    var app: TestAuthenticator

    var secret: SecretBytes { app.secret }
    func code(offset: Int = 0) -> String { app.code(offset: offset) }
    func wrongCode() -> String { app.wrongCode() }
}

/// Raw socket helpers for sending what no well-behaved client sends.
enum RawSocket {
    static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw HarnessError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The next message from the daemon (nil at EOF or after 10 s of silence).
    static func nextMessage(_ fd: Int32, _ decoder: inout FrameDecoder) throws -> Message? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let message = try decoder.next() { return message }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 10_000) > 0 else { return nil }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            decoder.append(buffer[0..<n])
        }
    }

    /// Reads until EOF or until `timeoutSeconds` pass; returns the bytes and whether EOF was seen.
    static func readToEOF(_ fd: Int32, timeoutSeconds: Double) -> (bytes: [UInt8], eof: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&pfd, 1, remaining) > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (out, true) }
            out.append(contentsOf: buffer[0..<n])
        }
        return (out, false)
    }
}
