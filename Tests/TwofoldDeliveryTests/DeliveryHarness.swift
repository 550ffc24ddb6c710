import Foundation
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension TestPaths {
    static var twofoldDeliver: String { DeliveryServiceProcess.binary }
}

extension DeliveryServiceProcess {
    /// The service as these tests start it: only the test process's uid may send requests (`peers`
    /// replaces the peer keys), no command but those `extraConfig` gives, the default time limit,
    /// and the environment systemd would give it: nothing of the test runner's but PATH, then
    /// `environment`.
    static func bare(_ extraConfig: String = "", peers: String? = nil, environment: [String: String] = [:],
                     start: Bool = true) throws -> DeliveryServiceProcess {
        try DeliveryServiceProcess(capture: false, timeoutMillis: nil, peers: peers ?? "daemon_user =\nallowed_uids = \(getuid())",
                                   extraConfig: extraConfig, environment: systemdEnvironment(environment), start: start)
    }

    static func systemdEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"].merging(extra) { $1 }
    }

    func request(_ request: DeliveryRequest, timeoutSeconds: Double = 30) throws -> DeliveryResponse {
        guard let bytes = try exchange(try DeliveryWire.frame(request), timeoutSeconds: timeoutSeconds) else {
            throw HarnessError("the service closed the connection without an answer\n\(log)")
        }
        return try JSONDecoder().decode(DeliveryResponse.self, from: Data(bytes))
    }

    /// Sends `bytes` (and half-closes unless `keepOpen`), then reads one response frame: its JSON,
    /// or nil when the service closes without one.
    func exchange(_ bytes: [UInt8], keepOpen: Bool = false, timeoutSeconds: Double = 30) throws -> [UInt8]? {
        let fd = try DeliveryClient.connect(socketPath)
        defer { close(fd) }
        // A refused peer's connection is closed unread: its write may fail (EPIPE), the read says so.
        if (try? DeliveryClient.write(fd, bytes)) != nil && !keepOpen { shutdown(fd, Int32(SHUT_WR)) }
        return try DeliveryClient.readFrame(fd, timeoutSeconds: timeoutSeconds)
    }
}

/// A plain Unix-socket client of the delivery protocol.
enum DeliveryClient {
    static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HarnessError("connect \(path): \(reason)")
        }
        return fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    /// One frame's body, or nil at EOF before any byte.
    static func readFrame(_ fd: Int32, timeoutSeconds: Double) throws -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            if received.count >= 4 {
                let length = Int(received[0]) << 24 | Int(received[1]) << 16 | Int(received[2]) << 8 | Int(received[3])
                if received.count >= 4 + length { return Array(received[4..<(4 + length)]) }
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw HarnessError("no answer within \(timeoutSeconds) s") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000) + 1) > 0 else { continue }
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { received += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            if received.isEmpty { return nil }
            throw HarnessError("the connection closed inside a frame (\(received.count) bytes)")
        }
    }
}

/// A request as twofoldd sends one, with a fresh 8-digit code (distinct in every test, so a log
/// line holding it cannot be a coincidence).
func makeRequest(channel: String = "email", destination: String? = nil, user: String = "alice") -> DeliveryRequest {
    let code = String(format: "%08d", Int.random(in: 10_000_000...99_999_999))
    let destination = destination ?? (channel == "sms" ? "+4915112345678" : "alice@example.com")
    return DeliveryRequest(channel: channel, user: user, destination: destination, subject: "Your Twofold login code",
                           message: "Your login code for host1 is \(code).\nIt is valid for 5 minutes.\n", code: code)
}

/// The state letter of /proc/PID/stat, nil when there is no such process.
func processState(_ pid: Int32) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}
