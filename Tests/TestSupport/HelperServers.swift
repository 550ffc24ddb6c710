import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TestPaths {
    /// The small real servers tests talk to: an SMTP server (aiosmtpd), an HTTP SMS gateway.
    public static var servers: String { root + "/Tests/TwofoldDeliveryTests/Servers" }
    /// The ready commands of the delivery service, in the tree.
    public static var sendEmail: String { root + "/delivery/send-email" }
    public static var sendSMS: String { root + "/delivery/send-sms" }
}

/// A helper server (Servers/*.py) that prints its port on its first line of output.
public final class PortServer: @unchecked Sendable {
    public let process: ChildProcess
    public let port: Int
    private let output: Int32

    public init(_ argv: [String]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(devnull) }
        process = try ChildProcess(argv, fds: [1: fds[1], 2: devnull])
        close(fds[1])
        output = fds[0]
        // The port line: the server accepts connections from then on.
        var line: [UInt8] = []
        var byte: UInt8 = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            var pfd = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 1_000) > 0 else { continue }
            guard read(output, &byte, 1) == 1 else { break }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            process.signal(SIGKILL)
            throw HarnessError("\(argv) printed no port (\(String(decoding: line, as: UTF8.self)))")
        }
        self.port = port
    }

    deinit {
        process.signal(SIGKILL)
        process.wait()
        close(output)
    }
}

/// A real HTTP SMS gateway (Servers/sms_gateway.py) on a free port, which appends each request it
/// gets to `record` as a JSON line, and send-sms's config for it: `url` (the gateway at `path`),
/// then `settings`' lines, in `directory`/send-sms.conf.
public final class SMSGateway: @unchecked Sendable {
    public let server: PortServer
    public let record: String
    public let configPath: String
    /// The delivery service's sms_command for this gateway.
    public var command: String { "\(TestPaths.sendSMS) --config \(configPath)" }

    public init(directory: String, path: String = "/v1/messages", settings: String) throws {
        record = directory + "/requests.jsonl"
        configPath = directory + "/send-sms.conf"
        server = try PortServer(["/usr/bin/python3", TestPaths.servers + "/sms_gateway.py", record])
        try "url = http://127.0.0.1:\(server.port)\(path)\n\(settings)".write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// systemd's LoadCredential=sms-token: `directory`/credentials, a directory only the service
    /// reads (mode 0700), holding a fresh token in `sms-token`.
    public static func credentials(in directory: String) throws -> (directory: String, token: String) {
        let credentials = directory + "/credentials"
        mkdir(credentials, 0o700)
        let token = "tok-" + UUID().uuidString
        try (token + "\n").write(toFile: credentials + "/sms-token", atomically: true, encoding: .utf8)
        return (credentials, token)
    }
}

/// Writes an executable script. A shell writes it, not this process: tests run in parallel, and a
/// child another test spawns at that moment would inherit a descriptor open for writing on it until
/// its exec (close-on-exec or not), so the service's exec of the script could fail "Text file busy".
public func writeScript(_ path: String, _ text: String) throws {
    let written = try ChildProcess.run(["/bin/sh", "-c", "cat > \"$0\" && chmod 755 \"$0\"", path], input: text)
    guard written.status == 0 else { throw HarnessError("cannot write \(path): \(written.output)") }
}

