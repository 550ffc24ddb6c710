/// What a service's auth stack does with pam_twofold's results: a failure that does not fail the
/// login, a code that replaces the password, PAM_IGNORE that fails the login, the code asked
/// before the password or after a wrong one, the module run twice.
struct PAMStackCheck {
    let analysis: PAMServiceAnalysis
    let failOpen: Bool

    var first: PAMStackItem { analysis.stack.items[analysis.twofold[0]] }
    var subject: String { "service \(analysis.service), \(first.line.location)" }

    func findings() -> [Finding] {
        guard !analysis.twofold.isEmpty, analysis.stack.fatal == nil else { return [] }
        var result: [Finding] = []
        if let never = neverSucceeds() { return [never] }
        var enforced = enforcement()
        let codeAlone = codeAloneFinding()
        if let codeAlone, let same = enforced.firstIndex(where: { $0.check == codeAlone.check }) {
            enforced[same].message = codeAlone.message + "; and " + enforced[same].message
        } else if let codeAlone {
            enforced.append(codeAlone)
        }
        result += enforced
        if codeAlone == nil { result += ordering() }
        result += [ignoreFallsThrough(), bypass(), twice()].compactMap { $0 }
        return result
    }

    /// Not even the right password and the right code log in.
    private func neverSucceeds() -> Finding? {
        let run = analysis.happy(PAMCode.success)
        guard !run.succeeded else { return nil }
        return .error("pam.never-succeeds", subject: subject,
                      "even with the right password and the right code the auth stack of \(analysis.service) fails (\(PAMCode.name(run.result))): nobody can log in through it",
                      fix: "compare \(analysis.file) with pam/examples/\(analysis.service == "sshd" ? "sshd" : "login") and remove what always fails")
    }

    /// A wrong code, a lock or a stopped daemon that still logs in.
    private func enforcement() -> [Finding] {
        let failures: [(Int32, String)] = [(PAMCode.authErr, "a wrong code (PAM_AUTH_ERR)"), (PAMCode.maxtries, "a locked account (PAM_MAXTRIES)"),
                                           (PAMCode.authinfoUnavail, "a stopped daemon (PAM_AUTHINFO_UNAVAIL)")]
        let passing = failures.filter { analysis.strict($0.0).succeeded }
        guard !passing.isEmpty else { return [] }
        let what = passing.map(\.1).joined(separator: ", ")
        guard passing.contains(where: { $0.0 != PAMCode.authinfoUnavail }) else {
            return [.warning("pam.failmode-open", subject: subject,
                             "the control `\(first.line.controlText)` lets \(what) pass: while twofoldd is down, logins through \(analysis.service) skip the second factor",
                             fix: requiredFix())]
        }
        let run = analysis.strict(PAMCode.authErr)
        if !run.executed.contains(where: analysis.twofold.contains) {
            let decider = run.decidedBy.map { analysis.stack.items[$0].line }
            return [.error("pam.skipped", subject: subject,
                           "a login through \(analysis.service) succeeds without pam_twofold running: \(decider.map { "\($0.location) (`\($0.text)`)" } ?? "a line before it") ends or jumps over the stack before it",
                           fix: "put pam_twofold where every successful path runs it, e.g. `auth required pam_twofold.so` after the password check, and make \(decider?.location ?? "that line") fail rather than end the stack")]
        }
        let (check, why): (String, String)
        switch first.line.keyword {
        case "optional": (check, why) = ("pam.optional", "`optional` ignores the module's failure")
        case "sufficient": (check, why) = ("pam.sufficient", "`sufficient` ignores the module's failure (only its success counts)")
        default: (check, why) = ("pam.not-enforced", "the control `\(first.line.controlText)` does not fail the stack when the module fails")
        }
        return [.error(check, subject: subject, "\(why): \(what) still logs in through \(analysis.service), so 2FA is not enforced", fix: requiredFix())]
    }

    /// The code alone logs in: pam_twofold's success ends the stack before the password is checked.
    private func codeAloneFinding() -> Finding? {
        guard let password = analysis.firstFactor, analysis.codeAloneLogsIn else { return nil }
        let check = first.line.keyword == "sufficient" ? "pam.sufficient" : "pam.before-unix"
        return .error(check, subject: subject,
                      "a right code alone logs in: the control `\(first.line.controlText)` ends the stack at pam_twofold's success, before \(password.line.moduleName ?? "the password check") (\(password.line.location)) checks the password",
                      fix: "move the line after the password check and make it `auth required pam_twofold.so\(argumentsText)`")
    }

    /// The code asked before the password, or after a wrong password.
    private func ordering() -> [Finding] {
        guard let password = analysis.firstFactor else { return [] }
        if analysis.codeBeforePassword {
            return [.warning("pam.before-unix", subject: subject,
                             "the code is asked before the password (\(password.line.location)): anyone who knows a user name can make the daemon check codes for it and learn who has 2FA",
                             fix: "move the pam_twofold line after \(password.line.location)")]
        }
        guard analysis.wrongPassword(PAMCode.authErr).executed.contains(where: analysis.twofold.contains) else { return [] }
        return [.warning("pam.after-bad-password", subject: subject,
                         "after a wrong password the stack still asks the code (\(password.line.location) is `\(password.line.controlText)`): a code is spent and the caller learns that the account has 2FA",
                         fix: "end the stack at a wrong password, as Debian's common-auth does (`auth [success=1 default=ignore] pam_unix.so` then `auth requisite pam_deny.so` and `auth required pam_permit.so`), or make \(password.line.location) `requisite`")]
    }

    /// PAM_IGNORE (user neither enrolled nor required; daemon down under failmode=open) fails the login.
    private func ignoreFallsThrough() -> Finding? {
        let run = analysis.happy(PAMCode.ignore)
        guard !run.succeeded else { return nil }
        let alsoOpen = failOpen ? " (and with failmode=open everybody, while twofoldd is down)" : ""
        return .error("pam.ignore-falls-through", subject: subject,
                      "for a user who is neither enrolled nor required pam_twofold returns PAM_IGNORE, and then nothing in the auth stack of \(analysis.service) succeeds: libpam refuses the login (\(PAMCode.name(run.result))): such users are locked out\(alsoOpen)",
                      fix: ignoreFix())
    }

    /// Another module's success (one doctor cannot judge) lets a failed code through.
    private func bypass() -> Finding? {
        guard !analysis.strict(PAMCode.authErr).succeeded, analysis.happy(PAMCode.authErr).succeeded else { return nil }
        let modules = analysis.bypassingUnknowns()
        guard !modules.isEmpty else { return nil }
        let names = modules.map { "\($0.line.moduleName ?? "?") (\($0.line.location))" }.joined(separator: ", ")
        return .warning("pam.bypass", subject: subject,
                        "a login through \(analysis.service) succeeds without a right code whenever \(names) succeeds",
                        fix: "if that is not meant as a way around the second factor, make \(modules.count == 1 ? "that line" : "those lines") `required` or move pam_twofold before \(modules.count == 1 ? "it" : "them")")
    }

    private func twice() -> Finding? {
        let ran = analysis.happy(PAMCode.success).executed.filter(analysis.twofold.contains)
        guard ran.count > 1 else { return nil }
        let lines = ran.map { analysis.stack.items[$0].line.location }.joined(separator: " and ")
        return .warning("pam.twice", subject: subject,
                        "pam_twofold runs \(ran.count) times in the auth stack of \(analysis.service) (\(lines)): users are asked for a code twice, and the second must come from a later 30-second step",
                        fix: "keep one of the lines (a service that includes common-auth gets the module from there)")
    }

    /// The line's arguments the module accepts (a fix never repeats a bad option).
    private var argumentsText: String {
        let accepted = TwofoldModuleOptions(first.line.arguments).accepted
        return accepted.isEmpty ? "" : " " + accepted.joined(separator: " ")
    }

    /// `required`, after the password when it came before, plus `optional pam_permit.so` after it
    /// when the stack needs that to let PAM_IGNORE pass.
    private func requiredFix() -> String {
        let required = analysis.replacingControl(of: analysis.twofold[0], with: "required")
        let line = "auth required \(first.line.target ?? "pam_twofold.so")\(argumentsText)"
        let move = analysis.codeBeforePassword ? " and move it after the password check (\(analysis.firstFactor?.line.location ?? "?"))" : ""
        if analysis.run(.init(twofold: PAMCode.ignore), items: required).succeeded { return "make the line `\(line)`\(move)" }
        return "make the line `\(line)`\(move), and add `auth optional pam_permit.so` after it"
    }

    /// The change that lets PAM_IGNORE pass and still fails a wrong code, found by trying it.
    private func ignoreFix() -> String {
        let index = analysis.twofold[0]
        let permit = analysis.inserting("auth optional pam_permit.so", after: index)
        if analysis.run(.init(twofold: PAMCode.ignore), items: permit).succeeded,
           !analysis.run(.init(twofold: PAMCode.authErr, unknown: PAMCode.authErr), items: permit).succeeded {
            return "add `auth optional pam_permit.so` right after \(first.line.location) (it never overrides a failure), as in pam/examples/sshd"
        }
        return "let a password check decide before pam_twofold and leave a success for PAM_IGNORE to fall back on, e.g. `@include common-auth` and then `auth required pam_twofold.so` as in pam/examples/login"
    }
}
