/// Checks of one pam_twofold line on its own: the module file, its options, failmode=open, and a
/// line in a stack other than auth. What a broken line does is told per service that uses it.
struct PAMLineCheck {
    let line: PAMLine
    /// The services whose auth stack runs this line, and where.
    let uses: [(analysis: PAMServiceAnalysis, index: Int)]
    let moduleDirectories: [String]

    var options: TwofoldModuleOptions { TwofoldModuleOptions(line.arguments) }

    func findings() -> [Finding] {
        guard let type = line.type, type == .auth else { return wrongType() }
        var result: [Finding] = []
        if let target = line.target, PAMModuleDirectories.resolve(target, in: moduleDirectories) == nil {
            let searched = target.hasPrefix("/") ? target : moduleDirectories.map { $0 + "/" + target }.joined(separator: ", ")
            result.append(.error("pam.module-missing", subject: line.location,
                                 "there is no module at \(searched): libpam returns PAM_MODULE_UNKNOWN, so \(consequence(of: PAMCode.moduleUnknown))",
                                 fix: "install it (`make install`, or the twofold package) or give the path where it is: `auth required /lib/\(PAMModuleDirectories.triplet)/security/pam_twofold.so`"))
        }
        let options = self.options
        for problem in options.problems {
            result.append(.error(problem.check, subject: line.location,
                                 "\(problem.reason): the module refuses to run with it (PAM_SERVICE_ERR), so \(consequence(of: PAMCode.serviceErr))",
                                 fix: fix(for: problem, options: options)))
        }
        if options.failOpen {
            result.append(.warning("pam.failmode-open", subject: line.location,
                                   "failmode=open: while twofoldd is down (no socket, not answering) logins through \(serviceNames) skip the second factor",
                                   fix: "remove failmode=open (the default, failmode=closed, refuses logins while the daemon is down), or keep it and watch the daemon closely"))
        }
        return result
    }

    private var serviceNames: String {
        uses.isEmpty ? "no service" : Array(Set(uses.map(\.analysis.service))).sorted().joined(separator: ", ")
    }

    /// What a line that always returns `code` does to each service that runs it.
    func consequence(of code: Int32) -> String {
        var fails: Set<String> = []
        var skips: Set<String> = []
        for (analysis, _) in uses {
            let indexes = analysis.twofold.filter { analysis.stack.items[$0].line.location == line.location }
            var overrides: [Int: Int32] = [:]
            for index in indexes { overrides[index] = code }
            if analysis.run(.init(twofold: PAMCode.success, overrides: overrides)).succeeded {
                skips.insert(analysis.service)
            } else {
                fails.insert(analysis.service)
            }
        }
        var parts: [String] = []
        if !fails.isEmpty { parts.append("every login through \(fails.sorted().joined(separator: ", ")) fails") }
        if !skips.isEmpty { parts.append("\(skips.sorted().joined(separator: ", ")) skip\(skips.count == 1 ? "s" : "") the second factor") }
        return parts.isEmpty ? "no service runs it" : parts.joined(separator: " and ")
    }

    private func fix(for problem: TwofoldModuleOptions.Problem, options: TwofoldModuleOptions) -> String {
        let corrected = (["auth", line.controlText, line.target ?? "pam_twofold.so"] + options.accepted).joined(separator: " ")
        if problem.check == "pam.nullok" {
            return "remove nullok: `\(corrected)`; users who have not enrolled are decided by the policy (`twofoldctl policy set --unenrolled enroll|deny|grace`), and users who are not required pass (PAM_IGNORE)"
        }
        return "remove or correct `\(problem.argument)`: `\(corrected)` (options: socket= daemon_user= timeout= dialog_timeout= failmode=closed|open forward_password nofido2 debug)"
    }

    /// pam_twofold has only an auth function: elsewhere libpam returns PAM_MODULE_UNKNOWN.
    private func wrongType() -> [Finding] {
        let type = line.type?.rawValue ?? "?"
        let action = line.actions.count > Int(PAMCode.moduleUnknown) ? line.actions[Int(PAMCode.moduleUnknown)] : .bad
        let fails = action == .bad || action == .die
        let message = "pam_twofold only checks codes (auth): in the \(type) stack libpam gets PAM_MODULE_UNKNOWN from it"
            + (fails ? ", which fails the \(type) step of every login through this file" : ", which the control ignores: the line does nothing")
        let fix = "remove the line; the code belongs in the auth stack: `auth required pam_twofold.so`"
        return [fails ? .error("pam.wrong-type", subject: line.location, message, fix: fix)
                      : .warning("pam.wrong-type", subject: line.location, message, fix: fix)]
    }
}
