import Foundation
import Testing
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The shipped units of the delivery service: systemd-analyze verifies them (with and without the
/// hardening drop-in), and the service keeps a setgid sendmail working (no option that implies
/// NoNewPrivileges=yes) while nothing of twofoldd's is reachable.
@Suite("twofold-deliver's systemd units")
struct DeliveryUnitTests {
    /// The options systemd.exec(5) says imply NoNewPrivileges=yes for a service with a User=.
    static let impliesNoNewPrivileges = [
        "DynamicUser", "LockPersonality", "MemoryDenyWriteExecute", "PrivateDevices", "ProtectClock", "ProtectHostname",
        "ProtectKernelLogs", "ProtectKernelModules", "ProtectKernelTunables", "RestrictAddressFamilies", "RestrictNamespaces",
        "RestrictRealtime", "RestrictSUIDSGID", "SystemCallArchitectures", "SystemCallFilter", "SystemCallLog", "NoNewPrivileges",
    ]

    static func entries(_ path: String) throws -> [(key: String, value: String)] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.hasPrefix("#"), !line.hasPrefix("["), let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), String(line[line.index(after: eq)...]))
        }
    }

    @Test("the service: a setgid sendmail works (no option implying NoNewPrivileges), no capability, twofoldd's state and socket out of reach")
    func serviceText() throws {
        let entries = try Self.entries(TestPaths.root + "/systemd/twofold-deliver.service")
        func values(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }
        for key in Self.impliesNoNewPrivileges where key != "NoNewPrivileges" {
            #expect(values(key).isEmpty, "\(key)= implies NoNewPrivileges=yes: postdrop would lose its setgid group")
        }
        #expect(values("NoNewPrivileges") == ["no"])
        #expect(values("User") == ["twofold-deliver"] && values("CapabilityBoundingSet") == [""] && values("AmbientCapabilities") == [""])
        #expect(values("ProtectSystem") == ["strict"] && values("ReadWritePaths") == ["-/var/spool/postfix/maildrop"])
        let inaccessible = Set(values("InaccessiblePaths").flatMap { $0.split(separator: " ").map(String.init) })
        #expect(inaccessible.isSuperset(of: ["-/var/lib/twofold", "-/var/lib/private/twofold", "-/etc/twofold/twofold.key", "-/run/twofold"]), "\(inaccessible)")
        #expect(values("ExecStart") == ["/usr/sbin/twofold-deliver --config /etc/twofold/deliver.conf"] && values("Type") == ["notify"])
        // The longest command (60 s) and the kill grace fit in the stop timeout.
        #expect((values("TimeoutStopSec").last.flatMap { Int($0) } ?? 0) > 61)
        // The sysusers file creates the user the unit names.
        let sysusers = try String(contentsOfFile: TestPaths.root + "/debian/twofold.sysusers", encoding: .utf8)
        #expect(sysusers.split(separator: "\n").contains { $0.hasPrefix("u twofold-deliver ") }, "\(sysusers)")

        let socket = try Self.entries(TestPaths.root + "/systemd/twofold-deliver.socket")
        #expect(socket.filter { $0.key == "ListenStream" }.map(\.value) == ["/run/twofold-deliver/deliver.sock"])

        let dropIn = try Self.entries(TestPaths.root + "/systemd/twofold-deliver-hardening.conf")
        #expect(dropIn.contains { $0 == ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6") } && dropIn.contains { $0 == ("NoNewPrivileges", "yes") })
    }

    @Test("systemd-analyze verifies the units, with and without the hardening drop-in, which lowers the exposure")
    func systemdAnalyze() throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard access(analyze, X_OK) == 0 else { throw HarnessError("\(analyze) missing: install the systemd package (scripts/install-deps.sh does)") }
        let directory = try makeTemporaryDirectory("dlv-unit")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let service = try String(contentsOfFile: TestPaths.root + "/systemd/twofold-deliver.service", encoding: .utf8)
            .replacingOccurrences(of: "ExecStart=/usr/sbin/twofold-deliver", with: "ExecStart=\(TestPaths.twofoldDeliver)")
        try service.write(toFile: directory + "/twofold-deliver.service", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: TestPaths.root + "/systemd/twofold-deliver.socket", toPath: directory + "/twofold-deliver.socket")
        func exposure() throws -> Double {
            let security = try ChildProcess.run([analyze, "security", "--offline=yes", "--no-pager", directory + "/twofold-deliver.service"])
            let line = try #require(security.output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(security.output)")
            return try #require(line.firstMatch(of: /: (\d+\.\d+)/).flatMap { Double($0.1) }, "\(line)")
        }
        let units = [directory + "/twofold-deliver.service", directory + "/twofold-deliver.socket"]
        let plain = try ChildProcess.run([analyze, "verify"] + units)
        #expect(plain.status == 0 && plain.output.isEmpty, "\(plain.output)")
        let base = try exposure()
        #expect(base <= 6.0, "exposure \(base)")

        mkdir(directory + "/twofold-deliver.service.d", 0o755)
        try FileManager.default.copyItem(atPath: TestPaths.root + "/systemd/twofold-deliver-hardening.conf",
                                         toPath: directory + "/twofold-deliver.service.d/hardening.conf")
        let hardened = try ChildProcess.run([analyze, "verify"] + units)
        #expect(hardened.status == 0 && hardened.output.isEmpty, "\(hardened.output)")
        let lower = try exposure()
        #expect(lower < base && lower <= 2.0, "exposure with the drop-in \(lower), without \(base)")
    }
}
