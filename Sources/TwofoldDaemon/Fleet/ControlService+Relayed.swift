import TwofoldProtocol

extension ControlService {
    /// What a caller on another host may ask through its relay: about its own account, nothing that
    /// adds, removes or reads a credential of anyone. A compromised host could keep a code its user
    /// typed and replay it into an enrollment of its own, so credentials change on the servers only
    /// (`enroll_hosts`, which opens enrollment to named hosts, and admin sessions through relays are
    /// to come). Returns the refusal, or nil when the request is open.
    static func closedThroughRelays(_ request: ControlRequest, host: String) -> ControlResponse? {
        switch request {
        case .ping, .status, .listFactors:
            return nil
        default:
            return .error(code: .permissionDenied,
                          message: "this request is not open through relays (host \(host)): run it on a server of the tier")
        }
    }
}
