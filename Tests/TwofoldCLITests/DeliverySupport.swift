import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

/// A real twofoldd that sends its codes through a real twofold-deliver (`DeliveryServiceProcess`:
/// a capture script per channel, `delivery.messages("sms")`, `delivery.lastCode("email")`), for
/// the contact commands end to end. The policy's factor kinds are set with `twofoldctl policy set`.
final class DeliveringDaemon {
    let delivery: DeliveryServiceProcess
    let daemon: DaemonProcess

    /// `kinds`: the policy's factor kinds (nil: the default policy). The send limit per user is
    /// raised: some tests send more codes to one user than an hour's default allows.
    init(kinds: String? = "totp,recovery,email,sms", extraConfig: String = "") throws {
        delivery = try DeliveryServiceProcess()
        daemon = try DaemonProcess(extraConfig: """
            delivery_socket = \(delivery.socketPath)
            delivery_limit_per_user = 50
            \(extraConfig)
            """)
        if let kinds {
            let set = try daemon.ctl(["policy", "set", "--factor-kinds", kinds])
            guard set.status == 0 else { throw HarnessError("policy set --factor-kinds \(kinds): \(set)") }
        }
    }

    /// Runs twofoldctl against the daemon, as root or as a test user.
    func ctl(_ arguments: [String], input: String? = nil, as user: TestUser? = nil) throws -> CLIResult {
        try daemon.ctl(arguments, input: input, as: user)
    }

    /// Gives `user` an authenticator app as factor `name` (`twofoldctl import`, as root).
    func importApp(_ user: String, name: String = "app") throws -> Authenticator {
        let app = try Authenticator.random()
        let result = try ctl(["import", user, "--uri", "-", "--name", name], input: app.uri(account: user) + "\n")
        guard result.status == 0 else { throw HarnessError("import \(user): \(result)") }
        return app
    }

    /// Gives `user` a verified contact (`twofoldctl contact import`, as root). `channel`: email or phone.
    func importContact(_ user: String, _ channel: String, _ value: String) throws {
        let result = try ctl(["contact", "import", "-"], input: "\(user) \(channel) \(value)\n")
        guard result.status == 0 else { throw HarnessError("contact import \(user): \(result)") }
    }

    /// Adds a contact for `user` that waits for its code (`twofoldctl contact add --user`, as root).
    func addWaitingContact(_ user: String, _ option: String, _ value: String) throws {
        let result = try ctl(["contact", "add", option, value, "--user", user])
        guard result.status == 0 else { throw HarnessError("contact add \(user): \(result)") }
    }

    /// `user`'s contacts as the daemon lists them (masked).
    func contacts(_ user: String) throws -> [ContactInfo] {
        let result = try ctl(["contact", "list", "--user", user, "--json"])
        guard result.status == 0 else { throw HarnessError("contact list \(user): \(result)") }
        return try result.json([ContactInfo].self)
    }

    func status(_ user: String) throws -> UserStatus { try daemon.status(user) }

    /// The daemon's audit records of `user`, oldest first.
    func audit(_ user: String) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit \(user)")
        }
        return entries
    }

    /// How many control requests named `name` ("contactImport") the daemon received, from its
    /// metrics (`twofoldctl metrics`).
    func requests(_ name: String) throws -> Int {
        let result = try ctl(["metrics"])
        guard result.status == 0 else { throw HarnessError("metrics: \(result)") }
        for line in result.stdout.split(separator: "\n") where line.hasPrefix("twofold_control_requests_total{")
            && line.contains("request=\"\(name)\"") {
            return line.split(separator: " ").last.flatMap { Double($0) }.map { Int($0) } ?? -1
        }
        return 0
    }
}

extension Authenticator {
    /// `code` typed with a space in the middle, as a person may ("123 456").
    static func spaced(_ code: String) -> String {
        String(code.prefix(3)) + " " + String(code.dropFirst(3))
    }
}
