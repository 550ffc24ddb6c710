import Foundation
import TwofoldProtocol

/// The Security keys (FIDO2) section: the daemon's setup for keys (`ServerInfo.fido2`: rp id,
/// policy, models and their attestation CAs, its own problems), and whether this host's logins can
/// use a key at all: a pam_twofold.so built with FIDO2, and a libfido2 that loads.
struct Fido2Check {
    /// Where pam_twofold.so is looked for (doctor's --module-dir, or the defaults).
    var moduleDirectories: [String]

    /// `info` nil: the daemon was not asked, or is from before keys; only the local checks run.
    func findings(_ info: Fido2Info?) -> [Finding] {
        let allowed = info?.allowedByPolicy == true
        return (info.map(daemonFindings) ?? []) + [moduleFinding(allowed: allowed), libraryFinding(allowed: allowed)]
    }

    private func daemonFindings(_ info: Fido2Info) -> [Finding] {
        var findings = [rpIDFinding(info), policyFinding(info)]
        if info.allowedByPolicy || !info.aaguids.isEmpty { findings.append(modelsFinding(info)) }
        findings += info.problems.filter { !Self.covered($0, by: info) }.map { problem in
            .warning("fido2.problem", subject: "twofoldd", problem,
                     fix: "correct fido2_attestation_ca or fido2_rp_id in twofoldd.conf (twofoldd.conf(5)), then `systemctl reload twofoldd`")
        }
        return findings
    }

    /// Whether a problem twofoldd reports is one the findings above already warn about from the
    /// same fields (an unset rp id or CA file, an unreadable CA file), so it is not said twice.
    static func covered(_ problem: String, by info: Fido2Info) -> Bool {
        if info.rpID == nil && info.allowedByPolicy && problem.contains("fido2_rp_id") { return true }
        guard !info.aaguids.isEmpty else { return false }
        if info.attestationCAFile == nil && problem.contains("fido2_attestation_ca") { return true }
        if let file = info.attestationCAFile, info.attestationCAs == nil, problem.contains(file) { return true }
        return false
    }

    /// The installation's relying party: without one no key is offered or registered.
    private func rpIDFinding(_ info: Fido2Info) -> Finding {
        guard let rpID = info.rpID else {
            guard info.allowedByPolicy else {
                return .ok("fido2.rp-id", subject: "fido2_rp_id", "not set, and the policy allows no key: keys are off")
            }
            return .warning("fido2.rp-id", subject: "fido2_rp_id",
                            "the policy allows security keys (fido2) but twofoldd has no fido2_rp_id: no key is offered at login or can be registered",
                            fix: "set fido2_rp_id = pam://YOUR-DOMAIN in twofoldd.conf on every server of the installation (the same on each, never a host name), then restart twofoldd")
        }
        return .ok("fido2.rp-id", subject: "fido2_rp_id", "\(rpID): a key registered once works on every host of the installation")
    }

    private func policyFinding(_ info: Fido2Info) -> Finding {
        let owners = "\(info.keys) key\(info.keys == 1 ? "" : "s") of \(info.users) user\(info.users == 1 ? "" : "s")"
        guard info.allowedByPolicy else {
            guard info.keys > 0 else { return .ok("fido2.policy", subject: "policy", "no factor-kind list has fido2; no key is registered") }
            return .warning("fido2.policy", subject: "policy",
                            "\(owners) registered, but no factor-kind list has fido2: those keys are never offered at login",
                            fix: "`twofoldctl policy set --factor-kinds totp,hotp,recovery,fido2` (or a host's or service's list), or remove the keys")
        }
        let verification = info.userVerification ? "user verification required (PIN or built-in)" : "a touch is enough (no user verification)"
        return .ok("fido2.policy", subject: "policy", "some logins may use a security key; \(verification); \(owners) registered")
    }

    /// Which models may be registered, and what their attestation is checked against.
    private func modelsFinding(_ info: Fido2Info) -> Finding {
        guard !info.aaguids.isEmpty else {
            return .ok("fido2.models", subject: "fido2_aaguids", "any key model may be registered (no AAGUID list)")
        }
        let file = info.attestationCAFile ?? "(no fido2_attestation_ca)"
        let cas = info.attestationCAs.map { "\($0) certificate\($0 == 1 ? "" : "s")" } ?? "not readable"
        let message = "only \(info.aaguids.count) model\(info.aaguids.count == 1 ? "" : "s") may be registered "
            + "(\(info.aaguids.joined(separator: ", "))), attestation checked against \(file): \(cas)"
        guard info.attestationCAFile != nil, (info.attestationCAs ?? 0) > 0 else {
            return .warning("fido2.models", subject: "fido2_aaguids", message + ": no key can be registered until the CA file is readable",
                            fix: "set fido2_attestation_ca to a PEM file of the makers' attestation root certificates, then `systemctl reload twofoldd`")
        }
        return .ok("fido2.models", subject: "fido2_aaguids", message)
    }

    /// The module of this host: built with FIDO2 it names libfido2's soname (it loads it with dlopen).
    private func moduleFinding(allowed: Bool) -> Finding {
        let module = PAMModuleBehaviour.twofoldModule
        guard let path = PAMModuleDirectories.resolve(module, in: moduleDirectories) else {
            return .ok("fido2.module", subject: module, "not installed in \(moduleDirectories.joined(separator: ", ")): not checked")
        }
        guard let contents = FileManager.default.contents(atPath: path) else {
            return .ok("fido2.module", subject: path, "not readable: not checked")
        }
        guard contents.range(of: Data(Fido2Library.soname.utf8)) != nil else {
            let message = "built without FIDO2 (no libfido2-dev at build time): logins on this host never offer a security key"
            guard allowed else { return .ok("fido2.module", subject: path, message) }
            return .warning("fido2.module", subject: path, message + "; users with keys must use their other factors here",
                            fix: "install the twofold package built with libfido2 (or rebuild pam/ with libfido2-dev installed)")
        }
        return .ok("fido2.module", subject: path, "built with FIDO2 (it loads \(Fido2Library.soname) when a login asks for a key)")
    }

    /// libfido2 itself, loaded as the module and `key add` load it.
    private func libraryFinding(allowed: Bool) -> Finding {
        guard let error = Fido2Library.loadError() else {
            return .ok("fido2.library", subject: Fido2Library.soname, "loads")
        }
        let message = "does not load (\(error)): no security key can be used or registered on this host"
        guard allowed else { return .ok("fido2.library", subject: Fido2Library.soname, message) }
        return .warning("fido2.library", subject: Fido2Library.soname, message, fix: "apt install libfido2-1")
    }
}
