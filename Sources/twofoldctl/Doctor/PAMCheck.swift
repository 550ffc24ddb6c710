/// The PAM section of `doctor`: every service file of the directory whose stacks run pam_twofold
/// (directly or through an included file such as common-auth), each line checked once, each
/// service's auth stack replayed.
struct PAMCheck {
    let directory: PAMConfigDirectory
    let moduleDirectories: [String]
    let doctorSocket: String

    struct Result {
        var findings: [Finding] = []
        /// The services whose auth stack runs pam_twofold, by name.
        var analyses: [String: PAMServiceAnalysis] = [:]
        /// The directory could not be read.
        var unreadable = false
    }

    func run() -> Result {
        var result = Result()
        let services: [String]
        do {
            services = try directory.services()
        } catch {
            result.unreadable = true
            result.findings.append(.error("pam.unreadable", subject: directory.path, "cannot read the PAM directory: \(error.localizedDescription)",
                                          fix: "run doctor as root, or give the directory with --pam-dir"))
            return result
        }
        var twofoldLines: [String: PAMLine] = [:]
        var sound: [String] = []
        for service in services {
            let file = directory.filePath(service)
            let lines = directory.allLines(file).filter { $0.moduleName == PAMModuleBehaviour.twofoldModule }
            for line in lines { twofoldLines[line.location] = line }
            let analysis = PAMServiceAnalysis(service: service, file: file, stack: directory.stack(file, type: .auth),
                                              moduleDirectories: moduleDirectories)
            result.findings += structure(analysis, usesTwofold: !lines.isEmpty)
            guard !analysis.twofold.isEmpty else { continue }
            result.analyses[service] = analysis
            let failOpen = TwofoldModuleOptions(analysis.stack.items[analysis.twofold[0]].line.arguments).failOpen
            let stackFindings = PAMStackCheck(analysis: analysis, failOpen: failOpen).findings()
            result.findings += stackFindings
            if stackFindings.isEmpty { sound.append(service) }
        }
        let lineFindings = lineFindings(Array(twofoldLines.values), analyses: Array(result.analyses.values))
        // A service passes when neither its stack nor one of its pam_twofold lines has a problem.
        for service in sound {
            guard let analysis = result.analyses[service] else { continue }
            let lines = analysis.twofold.map { analysis.stack.items[$0].line.location }
            let troubled = lineFindings.contains { finding in finding.severity != .ok && lines.contains { finding.subject.contains($0) } }
            if !troubled { result.findings.append(.ok("pam.service", subject: "service \(service)", summary(analysis))) }
        }
        result.findings += lineFindings
        return result
    }

    /// Lines libpam cannot use and includes it cannot open: errors where pam_twofold is used.
    private func structure(_ analysis: PAMServiceAnalysis, usesTwofold: Bool) -> [Finding] {
        var findings: [Finding] = []
        let subject = "service \(analysis.service)"
        if let fatal = analysis.stack.fatal {
            findings.append(Finding("pam.include-missing", usesTwofold ? .error : .warning, subject: subject, fatal,
                                    fix: "create the included file or remove the @include line"))
        }
        for line in analysis.stack.missingIncludes {
            findings.append(Finding("pam.include-missing", usesTwofold ? .error : .warning, subject: line.location,
                                    "`\(line.text)`: \(line.target ?? "no file") cannot be read, so every auth step through \(analysis.service) fails",
                                    fix: "create \(directory.filePath(line.target ?? "FILE")) or remove the line"))
        }
        guard usesTwofold else { return findings }
        // Another module of the stack that is not where doctor looks is taken as failing, as libpam
        // would (PAM_MODULE_UNKNOWN); say so, so an unexpected finding can be traced to it.
        var reported = Set<String>()
        for item in analysis.stack.items where item.role == .module && !analysis.isInstalled(item) {
            guard let target = item.line.target, PAMModuleBehaviour.of(item) != .twofold, reported.insert(target).inserted else { continue }
            findings.append(.warning("pam.other-module-missing", subject: item.line.location,
                                     "\(target) is not in \(moduleDirectories.joined(separator: ", ")): libpam would return PAM_MODULE_UNKNOWN for it, and the checks of \(analysis.service) take it as failing",
                                     fix: "install the module, or give the directory it is in with --module-dir (each --module-dir replaces the default list)"))
        }
        for item in analysis.stack.items where item.role == .mustFail && item.line.kind == .module {
            findings.append(.error("pam.syntax", subject: item.line.location,
                                   "`\(item.line.text)`: \(item.line.problem ?? "libpam cannot use this line"); it fails every login through \(analysis.service)",
                                   fix: "write it as `TYPE CONTROL MODULE [ARGS]`, e.g. `auth required pam_twofold.so`"))
        }
        return findings
    }

    /// Options, module file, failmode and stack type of each pam_twofold line; its socket.
    private func lineFindings(_ lines: [PAMLine], analyses: [PAMServiceAnalysis]) -> [Finding] {
        var findings: [Finding] = []
        var sockets: [String: (options: TwofoldModuleOptions, locations: [String])] = [:]
        for line in lines.sorted(by: { ($0.file, $0.number) < ($1.file, $1.number) }) {
            let uses = analyses.flatMap { analysis in
                analysis.twofold.filter { analysis.stack.items[$0].line.location == line.location }.prefix(1).map { (analysis, $0) }
            }
            let check = PAMLineCheck(line: line, uses: uses, moduleDirectories: moduleDirectories)
            findings += check.findings()
            let options = check.options
            guard line.type == .auth, !uses.isEmpty, options.problems.isEmpty else { continue }
            sockets[options.socket, default: (options, [])].locations.append(line.location)
        }
        for (socket, entry) in sockets.sorted(by: { $0.key < $1.key }) {
            findings += PAMSocketCheck(socket: socket, daemonUser: entry.options.daemonUser, failOpen: entry.options.failOpen,
                                       locations: entry.locations, doctorSocket: doctorSocket).findings()
        }
        return findings
    }

    private func summary(_ analysis: PAMServiceAnalysis) -> String {
        let lines = analysis.twofold.map { analysis.stack.items[$0].line.location }.joined(separator: ", ")
        let password = analysis.firstFactor.map { "after the password (\($0.line.moduleName ?? "?"), \($0.line.location))" }
            ?? "with no password check in the stack (the application must check a first factor, e.g. sshd a public key)"
        return "runs pam_twofold at \(lines), \(password); a failed code fails the login and users without 2FA pass"
    }
}
