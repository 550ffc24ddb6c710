import Foundation
import TwofoldProtocol

/// The Fleet section: a relay's servers as it reaches them now, its certificate and emergency codes;
/// a server's certificate and the registered hosts' certificates close to expiry.
struct TierCheck {
    let session: DaemonSession
    /// Certificates that expire within this many days are worth a warning.
    static let soonDays: Int64 = 30

    func findings(_ fleet: FleetInfo, nowMillis: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> [Finding] {
        var findings = [certificate(fleet, nowMillis: nowMillis)]
        if fleet.role == "relay" {
            findings += servers(fleet.servers ?? [])
            findings.append(breakGlass(fleet.breakGlass ?? []))
        } else {
            findings += hosts(nowMillis: nowMillis)
        }
        return findings
    }

    private func certificate(_ fleet: FleetInfo, nowMillis: Int64) -> Finding {
        let subject = "\(fleet.role) certificate"
        guard let notAfter = fleet.certificateNotAfterMillis else {
            return .error("fleet.certificate", subject: subject, "twofoldd cannot read its tls_certificate",
                          fix: "check the file `tls_certificate` names: `twofoldd --check-config`")
        }
        let days = (notAfter - nowMillis) / 86_400_000
        if notAfter <= nowMillis {
            return .error("fleet.certificate", subject: subject, "expired on \(Format.time(millis: notAfter)): the other side refuses every connection",
                          fix: fleet.role == "relay" ? "make a new host certificate (scripts/fleet-ca.sh host), register it on a server (twofoldctl host add), install it and restart"
                                                     : "make a new server certificate (scripts/fleet-ca.sh server), install it and restart")
        }
        if days < Self.soonDays {
            return .warning("fleet.certificate", subject: subject, "expires in \(days) day\(days == 1 ? "" : "s") (\(Format.time(millis: notAfter)))",
                            fix: "renew it before then" + (fleet.role == "relay" ? " and register the new one: twofoldctl host add NAME --certificate FILE" : ""))
        }
        return .ok("fleet.certificate", subject: subject, "fingerprint \(fleet.certificateFingerprint ?? "?"), valid for \(days) more days")
    }

    private func servers(_ servers: [TierServerState]) -> [Finding] {
        let down = servers.filter { $0.error != nil }
        if down.count == servers.count {
            return [.error("fleet.tier", subject: "servers", "no server of the tier answers: logins here get UNAVAILABLE (the module's failmode decides): "
                           + down.map { "\($0.address): \($0.error ?? "")" }.joined(separator: "; "),
                           fix: "check the servers, this host's network (the unit's IPAddressAllow=) and its certificate's registration (twofoldctl host list on a server)")]
        }
        return servers.map { server in
            guard let error = server.error else { return .ok("fleet.tier", subject: server.address, "answers (TLS, a relay protocol version in common)") }
            return .warning("fleet.tier", subject: server.address, "does not answer: \(error); logins go to the other servers",
                            fix: "check that server, or remove it from `servers`")
        }
    }

    private func breakGlass(_ codes: [BreakGlassEntry]) -> Finding {
        guard !codes.isEmpty else {
            return .ok("fleet.break-glass", subject: "emergency codes", "none: when no server answers, the module's failmode decides for everyone (twofoldctl break-glass issue --account root to have a way in)")
        }
        return .ok("fleet.break-glass", subject: "emergency codes", codes.map { "\($0.account): \($0.unused) unused" }.joined(separator: ", "))
    }

    /// Registered host certificates in force that have expired or expire soon (a host that cannot connect).
    private func hosts(nowMillis: Int64) -> [Finding] {
        guard case .hosts(let certificates)? = try? session.send(.hostList) else { return [] }
        let inForce = certificates.filter { $0.revokedMillis == nil }
        let newest = Dictionary(inForce.map { ($0.name, $0.notAfterMillis ?? .max) }, uniquingKeysWith: max)
        let soon = newest.filter { $0.value - nowMillis < Self.soonDays * 86_400_000 }.sorted { $0.key < $1.key }
        guard !soon.isEmpty else {
            return [.ok("fleet.hosts", subject: "host registry", "\(newest.count) host\(newest.count == 1 ? "" : "s") registered, none with a certificate that expires within \(Self.soonDays) days")]
        }
        return soon.map { host, notAfter in
            .warning("fleet.hosts", subject: host, notAfter <= nowMillis ? "its newest certificate has expired: the host cannot reach the tier"
                                                                       : "its newest certificate expires on \(Format.time(millis: notAfter))",
                     fix: "renew it (scripts/fleet-ca.sh host \(host)) and register the new one: twofoldctl host add \(host) --certificate FILE")
        }
    }
}
