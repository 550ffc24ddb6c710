import TwofoldProtocol

/// Where the policy asks for 2FA and no PAM stack runs the module: nowhere at all, or a service
/// the policy names as required.
struct CoverageCheck {
    let pam: PAMCheck.Result
    let pamDirectory: String
    let policy: PolicyDocument?
    let impact: PolicyImpact?

    func findings() -> [Finding] {
        guard !pam.unreadable else { return [] }
        let requiredServices = (policy?.services ?? [:]).filter { $0.value == "required" }.keys.sorted()
        guard !pam.analyses.isEmpty else {
            let required = (impact?.requiredAfter ?? 0) > 0 || (policy.map { $0.require != "nobody" } ?? false) || !requiredServices.isEmpty
            let message = "no PAM service in \(pamDirectory) runs pam_twofold: 2FA is not enforced anywhere"
                + (required ? ", although the policy requires it\(impact.map { " (\($0.requiredAfter) users)" } ?? "")" : "")
            return [Finding("pam.not-used", required ? .error : .warning, subject: pamDirectory, message,
                            fix: "add `auth required pam_twofold.so` to the services to protect, e.g. \(pamDirectory)/sshd as in pam/examples/sshd (README: \"Protect sshd\")")]
        }
        return requiredServices.filter { pam.analyses[$0] == nil }.map { service in
            .warning("policy.service-without-pam", subject: "\(pamDirectory)/\(service)",
                     "the policy requires 2FA for \(service), but \(pamDirectory)/\(service) does not run pam_twofold: \(service) logins are not asked a code",
                     fix: "add `auth required pam_twofold.so` to \(pamDirectory)/\(service) (see pam/examples), or `twofoldctl policy set --service \(service)=default`")
        }
    }
}
