/// How each way sshd may complete a login (AuthenticationMethods, or each enabled method alone
/// with `any`) meets sshd's PAM stack: keyboard-interactive runs it and relays the code prompt;
/// the password method runs it too but answers every prompt with the password; other methods
/// (a public key) skip it.
extension SSHDCheck {
    private static let firstFactors: Set<String> = ["publickey", "hostbased", "gssapi-with-mic"]
    private static let recommended = "AuthenticationMethods publickey,keyboard-interactive"

    func methodFindings(_ settings: SSHDSettings, pam: PAMServiceAnalysis) -> [Finding] {
        var withoutFirstFactor: [String] = [], passwordLists: [[String]] = [], keyOnly: [String] = []
        for list in settings.methodLists {
            let interactive = settings.keyboardInteractive && list.contains("keyboard-interactive")
            let password = settings.password && list.contains("password")
            let other = list.contains(where: Self.firstFactors.contains)
            if interactive {
                if !other && !password && (pam.acceptsAnyPassword || pam.codeAloneLogsIn) { withoutFirstFactor.append(list.joined(separator: ",")) }
            } else if password {
                passwordLists.append(list)
            } else {
                keyOnly.append(list.joined(separator: ","))
            }
        }
        let methods = "AuthenticationMethods \(settings.authenticationMethods)"
        var findings: [Finding] = []
        if !withoutFirstFactor.isEmpty {
            findings.append(.error("sshd.no-first-factor", subject: "\(configName): \(methods)",
                                   "the auth stack of \(pamFile) checks no password (it expects sshd to check a public key first), yet keyboard-interactive alone\(settings.authenticationMethods == "any" ? "" : " (\(withoutFirstFactor.joined(separator: " ")))") completes a login: \(whoGetsIn(pam))",
                                   fix: "`\(Self.recommended)` in \(configName), then `systemctl reload ssh`"))
        }
        if let finding = passwordFinding(passwordLists, settings: settings, pam: pam) { findings.append(finding) }
        if !keyOnly.isEmpty {
            findings.append(.warning("sshd.authmethods", subject: "\(configName): \(methods)",
                                     "\(keyOnly.joined(separator: " ")) completes a login without the PAM auth stack: logins with \(keyOnly.count == 1 ? "it" : "them") (a public key alone) are never asked a code",
                                     fix: "`\(Self.recommended)` in \(configName), then `systemctl reload ssh`"))
        }
        return findings
    }

    /// Who keyboard-interactive alone lets in when sshd's PAM stack checks no password.
    private func whoGetsIn(_ pam: PAMServiceAnalysis) -> String {
        var who: [String] = []
        if pam.acceptsAnyPassword { who.append("users without 2FA get in with no password at all") }
        if pam.codeAloneLogsIn { who.append("enrolled users get in with a code alone") }
        return who.joined(separator: ", ")
    }

    /// The password method answers the code prompt with the password.
    private func passwordFinding(_ lists: [[String]], settings: SSHDSettings, pam: PAMServiceAnalysis) -> Finding? {
        guard !lists.isEmpty else { return nil }
        let names = lists.map { $0.joined(separator: ",") }.joined(separator: " ")
        let anyPassword = lists.contains { !$0.contains(where: Self.firstFactors.contains) } && pam.acceptsAnyPassword
        let explicit = settings.authenticationMethods != "any"
        let subject = "\(configName): PasswordAuthentication"
        let fix = "`PasswordAuthentication no` in \(configName) (passwords then go through keyboard-interactive, which asks the password and the code), then `systemctl reload ssh`"
        let how = "sshd's password method (\(names)) runs the PAM stack of \(pamFile) and answers every prompt with the password, so the code prompt gets the password"
        if anyPassword {
            return .error("sshd.password", subject: subject, "\(how); that stack checks no password, so users without 2FA log in with any password", fix: fix)
        }
        if explicit {
            return .error("sshd.password", subject: subject, "\(how): users who must give a code can never complete \(names)", fix: fix)
        }
        return .warning("sshd.password", subject: subject, "\(how): users who must give a code fail that way (clients fall back to keyboard-interactive only if they offer it)", fix: fix)
    }
}
