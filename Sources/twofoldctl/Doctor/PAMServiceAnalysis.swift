/// A service's auth stack with pam_twofold in it, replayed under the cases that matter: the
/// password right or wrong, pam_twofold succeeding, failing or stepping aside, and the modules
/// doctor does not know succeeding or failing.
struct PAMServiceAnalysis {
    let service: String
    let file: String
    let stack: PAMStack
    /// Indexes (in `stack.items`) of the pam_twofold lines.
    let twofold: [Int]
    let behaviours: [PAMModuleBehaviour]
    let moduleDirectories: [String]
    /// Whether each module path of the stack names a file (libpam returns PAM_MODULE_UNKNOWN for one that does not).
    let installed: [String: Bool]

    init(service: String, file: String, stack: PAMStack, moduleDirectories: [String]) {
        self.service = service
        self.file = file
        self.stack = stack
        self.moduleDirectories = moduleDirectories
        let behaviours = stack.items.map(PAMModuleBehaviour.of)
        self.behaviours = behaviours
        twofold = stack.items.indices.filter { stack.items[$0].role == .module && behaviours[$0] == .twofold }
        var installed: [String: Bool] = [:]
        for item in stack.items where item.role == .module {
            guard let target = item.line.target, installed[target] == nil else { continue }
            installed[target] = PAMModuleDirectories.resolve(target, in: moduleDirectories) != nil
        }
        self.installed = installed
    }

    /// Whether libpam can load the item's module (a line added to try a fix counts as loadable).
    func isInstalled(_ item: PAMStackItem) -> Bool {
        guard item.line.file != Self.fixFile, let target = item.line.target else { return true }
        return installed[target] ?? (PAMModuleDirectories.resolve(target, in: moduleDirectories) != nil)
    }

    static let fixFile = "(fix)"

    /// One case: what pam_twofold returns, whether the password is right, what unknown modules return.
    struct Case {
        var twofold: Int32
        var passwordRight = true
        var unknown = PAMCode.success
        /// Results forced for particular items.
        var overrides: [Int: Int32] = [:]
    }

    func run(_ c: Case, items: [PAMStackItem]? = nil) -> PAMDispatch.Run {
        let items = items ?? stack.items
        return PAMDispatch.run(items) { index in
            if let forced = c.overrides[index] { return forced }
            let behaviour = PAMModuleBehaviour.of(items[index])
            // pam_twofold is examined as if installed (a missing file is reported on its own).
            guard behaviour == .twofold || isInstalled(items[index]) else { return PAMCode.moduleUnknown }
            switch behaviour {
            case .twofold: return c.twofold
            case .firstFactor: return c.passwordRight ? PAMCode.success : PAMCode.authErr
            case .fixed(let code): return code
            case .unknown: return c.unknown
            }
        }
    }

    /// The right password, modules doctor does not know succeeding: an ordinary good login.
    func happy(_ twofold: Int32) -> PAMDispatch.Run { run(Case(twofold: twofold)) }
    /// The right password, modules doctor does not know failing: only what the stack itself lets through.
    func strict(_ twofold: Int32) -> PAMDispatch.Run { run(Case(twofold: twofold, unknown: PAMCode.authErr)) }
    /// A wrong password (and unknown modules failing).
    func wrongPassword(_ twofold: Int32) -> PAMDispatch.Run {
        run(Case(twofold: twofold, passwordRight: false, unknown: PAMCode.authErr))
    }

    /// The index of the first line of the stack that checks a password.
    var firstFactorIndex: Int? {
        stack.items.indices.first { stack.items[$0].role == .module && behaviours[$0] == .firstFactor && isInstalled(stack.items[$0]) }
    }

    var firstFactor: PAMStackItem? { firstFactorIndex.map { stack.items[$0] } }

    /// Whether pam_twofold runs before the password check on a good login.
    var codeBeforePassword: Bool {
        guard let password = firstFactorIndex else { return false }
        let ran = happy(PAMCode.success).executed
        guard let code = ran.firstIndex(where: twofold.contains) else { return false }
        return ran.firstIndex(of: password).map { code < $0 } ?? true
    }

    /// Whether the stack lets a user in whatever the password (or with none) when pam_twofold steps
    /// aside: true for a stack meant to follow a public key (pam/examples/sshd).
    var acceptsAnyPassword: Bool { wrongPassword(PAMCode.ignore).succeeded }

    /// Whether pam_twofold's success alone logs in, the password wrong.
    var codeAloneLogsIn: Bool { wrongPassword(PAMCode.success).succeeded }

    /// The items doctor does not know whose success alone lets a login through that pam_twofold failed.
    func bypassingUnknowns() -> [PAMStackItem] {
        stack.items.indices.filter { behaviours[$0] == .unknown && stack.items[$0].role == .module && isInstalled(stack.items[$0]) }.filter { index in
            run(Case(twofold: PAMCode.authErr, unknown: PAMCode.authErr, overrides: [index: PAMCode.success])).succeeded
        }.map { stack.items[$0] }
    }

    /// The stack with `line` inserted after item `index` (at its level), to try a fix.
    func inserting(_ text: String, after index: Int) -> [PAMStackItem] {
        var items = stack.items
        let line = PAMConfigReader.parse(text, file: Self.fixFile, number: 0)
        items.insert(PAMStackItem(line: line, role: .module, level: items[index].level), at: index + 1)
        return items
    }

    /// The stack with the control of item `index` replaced by `control`.
    func replacingControl(of index: Int, with control: String) -> [PAMStackItem] {
        var items = stack.items
        let old = items[index].line
        var line = PAMConfigReader.parse("auth \(control) \(old.target ?? "") \(old.arguments.joined(separator: " "))", file: old.file, number: old.number)
        line.text = old.text
        items[index].line = line
        return items
    }
}
