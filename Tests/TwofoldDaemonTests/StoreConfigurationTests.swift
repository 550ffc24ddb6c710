import Foundation
import Testing
import TwofoldTestSupport
@testable import TwofoldDaemon

/// The store keys of twofoldd.conf, and the password file the PostgreSQL store reads.
@Suite("store configuration")
struct StoreConfigurationTests {
    @Test("store keys: values and the combinations that are mistakes", arguments: [
        ("store = postgresql\npostgresql_url = postgresql://twofold@db1/twofold", nil),
        ("store = POSTGRESQL\npostgresql_url = postgres://twofold@127.0.0.1:5432/twofold?sslmode=disable", nil),
        ("store = sqlite", nil),
        ("store = mysql", "t.conf:1: store must be sqlite or postgresql"),
        ("store = postgresql", "t.conf: store = postgresql needs postgresql_url"),
        ("postgresql_url = postgresql://twofold@db1/twofold", "t.conf: postgresql_url or postgresql_password_file is set but store = sqlite; set store = postgresql"),
        ("store = postgresql\npostgresql_url = db1:5432", "t.conf:2: postgresql_url must be a URI such as postgresql://twofold@db1:5432/twofold?sslmode=verify-full"),
        ("store = postgresql\npostgresql_url = postgresql://t@db1/t\ndatabase = /var/lib/twofold/x.sqlite", "t.conf: database is the SQLite file; with store = postgresql remove it"),
        ("store = postgresql\npostgresql_url = postgresql://t@db1/t\npostgresql_pool_size = 0", "t.conf:3: 'postgresql_pool_size' must be a whole number from 1 to 64"),
        ("store = postgresql\npostgresql_url = postgresql://t@db1/t\npostgresql_statement_timeout_ms = 20000", "t.conf:3: 'postgresql_statement_timeout_ms' must be a whole number from 100 to 8000"),
        ("store = postgresql\npostgresql_url = postgresql://t@db1/t\npostgresql_password_file = secret", "t.conf:3: 'postgresql_password_file' must be a path"),
    ] as [(String, String?)])
    func parse(text: String, error: String?) {
        do {
            let config = try DaemonConfiguration.parse(text, source: "t.conf")
            #expect(error == nil, "parsed although it should fail with \(error ?? "")")
            if text.hasPrefix("store = postgresql") || text.hasPrefix("store = POSTGRESQL") { #expect(config.store == .postgresql) }
        } catch let failure as ConfigurationError {
            #expect(failure.message == error)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    private func withFile(mode: mode_t, contents: String, _ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-pw-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/password"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: Int(mode)]))
        try body(path)
    }

    /// The error message of reading `path`, or nil when it reads.
    private func failure(_ path: String, checkPermissions: Bool = true) -> String? {
        do {
            _ = try PasswordFile.firstLine(of: path, checkPermissions: checkPermissions)
            return nil
        } catch {
            return (error as? ConfigurationError)?.message ?? "unexpected \(error)"
        }
    }

    @Test("the password file: first line, owner-only, a regular file, and errors that never show the content")
    func passwordFile() throws {
        try withFile(mode: 0o600, contents: "s3cr:et\nsecond line\n") { path in
            let line = try PasswordFile.firstLine(of: path, checkPermissions: true)
            #expect(line == "s3cr:et")
        }
        try withFile(mode: 0o400, contents: "crlf-ended\r\n") { path in
            let line = try PasswordFile.firstLine(of: path, checkPermissions: true)
            #expect(line == "crlf-ended")
        }
        try withFile(mode: 0o640, contents: "group-readable-secret\n") { path in
            let message = failure(path)
            #expect(message?.contains("accessible to group or others (mode 640; use chmod 600)") == true, "\(message ?? "read")")
            #expect(message?.contains("group-readable-secret") == false)
            // A systemd credential: systemd makes it private to the service, whatever its mode.
            let line = try PasswordFile.firstLine(of: path, checkPermissions: false)
            #expect(line == "group-readable-secret")
        }
        try withFile(mode: 0o600, contents: "\nlater") { path in
            #expect(failure(path)?.contains("is empty") == true)
        }
        try withFile(mode: 0o600, contents: String(repeating: "x", count: PasswordFile.maximumBytes + 1)) { path in
            #expect(failure(path)?.contains("longer than") == true)
        }
        try withFile(mode: 0o600, contents: "target\n") { path in
            let link = path + ".link"
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
            #expect(failure(link)?.contains("symbolic link") == true)
        }
        #expect(failure("/nonexistent/twofold-password")?.contains("cannot open password file") == true)
    }
}
