/// How the daemon sends delivered codes (twofoldd.conf: `delivery_*`, `delivered_code_*`). The
/// messages go to the delivery service (`twofold-deliver`), which holds the gateways' settings.
public struct DeliveryConfiguration: Sendable, Equatable {
    /// The delivery service's socket.
    public var socketPath = "/run/twofold-deliver/deliver.sock"
    /// How long a delivered code stays valid (5 minutes), so a login that timed out can use it next time.
    public var codeValiditySeconds = 300
    /// Digits of a delivered code (the policy's; this is its value until an admin stores a policy).
    public var codeDigits = 6
    /// Codes sent per hour at most: to one user, to one address or number (whoever's), and from
    /// one host (its logins' requests). Text messages cost money: a pump must run dry fast.
    public var limitPerUser = 5
    public var limitPerDestination = 5
    public var limitPerHost = 100
    /// How long the daemon waits for the service's answer (never past the login's deadline).
    public var timeoutMillis = 8_000

    public init() {}

    /// The window of the send limits.
    public static let limitWindowMillis: Int64 = 3_600_000

    /// Whether `key` is one of these keys (a relay refuses them).
    static func isKey(_ key: String) -> Bool {
        var probe = DeliveryConfiguration()
        return (try? probe.set(key: key, value: "", at: "", path: { "/" }, int: { $0.lowerBound })) == true
    }

    /// Sets `key` if it is a delivery key; false if it is not one.
    mutating func set(key: String, value: String, at: String, path: () throws -> String, int: (ClosedRange<Int>) throws -> Int) throws -> Bool {
        switch key {
        case "delivery_socket": socketPath = try path()
        case "delivered_code_validity": codeValiditySeconds = try int(30...3_600)
        case "delivered_code_digits": codeDigits = try int(6...8)
        case "delivery_limit_per_user": limitPerUser = try int(1...1_000)
        case "delivery_limit_per_destination": limitPerDestination = try int(1...1_000)
        case "delivery_limit_per_host": limitPerHost = try int(1...100_000)
        case "delivery_timeout_ms": timeoutMillis = try int(500...30_000)
        default: return false
        }
        return true
    }
}
