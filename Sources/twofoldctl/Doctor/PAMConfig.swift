import Foundation

/// PAM return values (`security/_pam_types.h`), the indexes of libpam's action tables.
enum PAMCode {
    static let success: Int32 = 0
    static let serviceErr: Int32 = 3
    static let permDenied: Int32 = 6
    static let authErr: Int32 = 7
    static let authinfoUnavail: Int32 = 9
    static let maxtries: Int32 = 11
    static let ignore: Int32 = 25
    static let moduleUnknown: Int32 = 28

    /// `_pam_token_returns`: the names a `[value=action]` control uses, in code order; "default" follows.
    static let tokens = [
        "success", "open_err", "symbol_err", "service_err", "system_err", "buf_err", "perm_denied", "auth_err",
        "cred_insufficient", "authinfo_unavail", "user_unknown", "maxtries", "new_authtok_reqd", "acct_expired",
        "session_err", "cred_unavail", "cred_expired", "cred_err", "no_module_data", "conv_err", "authtok_err",
        "authtok_recover_err", "authtok_lock_busy", "authtok_disable_aging", "try_again", "ignore", "abort",
        "authtok_expired", "module_unknown", "bad_item",
    ]
    /// `_PAM_RETURN_VALUES`: codes at or above it are invalid to libpam (treated as `bad`).
    static let count = tokens.count

    /// `PAM_AUTH_ERR` for 7.
    static func name(_ code: Int32) -> String {
        guard code >= 0, Int(code) < count else { return "PAM code \(code)" }
        return "PAM_" + tokens[Int(code)].uppercased()
    }
}

/// What libpam does with a module's return value (`_PAM_ACTION_*`).
enum PAMAction: Equatable {
    case ignore, ok, done, bad, die, reset
    /// Skip the next N modules (a substack counts as one).
    case jump(Int)
}

enum PAMType: String, CaseIterable {
    case auth, account, session, password
}

/// One configuration line of a PAM file, as libpam reads it (`_pam_parse_conf_file`).
struct PAMLine {
    enum Kind: Equatable {
        /// `type control module args...`
        case module
        /// `type include FILE` or `type substack FILE`: FILE's lines of that type.
        case include(substack: Bool)
        /// Debian's `@include FILE`: FILE's lines of every type, at this point.
        case atInclude
    }

    var file: String
    /// The first physical line (a line may continue over several with a trailing backslash).
    var number: Int
    var text: String
    var kind: Kind
    var type: PAMType?
    /// `-auth ...`: libpam does not log a missing module (it still fails the line).
    var silent = false
    var controlText = ""
    /// The action for each return value (`PAMCode.count` entries).
    var actions: [PAMAction] = []
    /// The keyword control (`required`, `requisite`, `sufficient`, `optional`); nil for `[...]`.
    var keyword: String?
    /// The module path, or the file an include names.
    var target: String?
    var arguments: [String] = []
    /// Why libpam cannot use the line: it then fails every stack it lands in (`PAM_HT_MUST_FAIL`).
    var problem: String?

    var location: String { "\(file):\(number)" }

    /// The module's file name (`pam_twofold.so` for `/lib/.../security/pam_twofold.so`).
    var moduleName: String? {
        guard kind == .module, let target else { return nil }
        return target.split(separator: "/").last.map(String.init)
    }
}

/// Reads PAM service files: comments, backslash continuations, `[...]` tokens, controls.
enum PAMConfigReader {
    /// The logical lines of `text` with their first physical line number, as `_pam_assemble_line`
    /// joins them: `#` ends a line (even after a backslash), a trailing backslash joins the next.
    static func logicalLines(_ text: String) -> [(number: Int, text: String)] {
        var result: [(Int, String)] = []
        var pending = ""
        var start = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(raw)
            if pending.isEmpty { start = index + 1 }
            let hasComment = line.contains("#")
            if let hash = line.firstIndex(of: "#") { line = String(line[..<hash]) }
            var trimmed = line
            while let last = trimmed.last, last == " " || last == "\t" || last == "\r" { trimmed.removeLast() }
            if !hasComment, trimmed.hasSuffix("\\") {
                pending += String(trimmed.dropLast()) + " "
                continue
            }
            let whole = (pending + line).trimmingCharacters(in: .whitespaces)
            pending = ""
            if !whole.isEmpty { result.append((start, whole)) }
        }
        let rest = pending.trimmingCharacters(in: .whitespaces)
        if !rest.isEmpty { result.append((start, rest)) }
        return result
    }

    /// Splits like `_pam_StrTok`: blanks separate tokens; `[...]` is one token (without the brackets,
    /// `\]` standing for `]`). Returns each token and whether it was bracketed.
    static func tokens(_ line: String) -> [(text: String, bracketed: Bool)] {
        var result: [(String, Bool)] = []
        var chars = Array(line)[...]
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        while true {
            while let c = chars.first, blank(c) { chars = chars.dropFirst() }
            guard let first = chars.first else { break }
            var token = ""
            if first == "[" {
                chars = chars.dropFirst()
                while let c = chars.first, c != "]" {
                    chars = chars.dropFirst()
                    if c == "\\", chars.first == "]" { token.append("]"); chars = chars.dropFirst(); continue }
                    token.append(c)
                }
                chars = chars.dropFirst()
                result.append((token, true))
            } else {
                while let c = chars.first, !blank(c) { token.append(c); chars = chars.dropFirst() }
                result.append((token, false))
            }
        }
        return result
    }

    /// Parses one logical line of a service file.
    static func parse(_ text: String, file: String, number: Int) -> PAMLine {
        var line = PAMLine(file: file, number: number, text: text, kind: .module)
        var words = tokens(text)[...]
        guard let typeWord = words.popFirst()?.text else { return line }
        if typeWord.lowercased() == "@include" {
            line.kind = .atInclude
            line.target = words.first?.text
            if line.target == nil { line.problem = "@include names no file" }
            return line
        }
        var typeName = typeWord
        if typeName.hasPrefix("-") { line.silent = true; typeName.removeFirst() }
        line.type = PAMType(rawValue: typeName.lowercased())
        if line.type == nil { line.problem = "unknown type '\(typeWord)' (auth, account, session or password)" }
        guard let control = words.popFirst() else {
            line.problem = line.problem ?? "no control (required, requisite, sufficient, optional or [...])"
            line.actions = Array(repeating: .bad, count: PAMCode.count)
            return line
        }
        line.controlText = control.bracketed ? "[\(control.text)]" : control.text
        parseControl(control, into: &line)
        line.target = words.popFirst()?.text
        line.arguments = words.map(\.text)
        if line.target == nil, line.problem == nil {
            line.problem = line.kind == .module ? "no module named" : "\(control.text) names no file"
        }
        return line
    }

    private static func parseControl(_ control: (text: String, bracketed: Bool), into line: inout PAMLine) {
        switch control.bracketed ? "" : control.text.lowercased() {
        case "required": line.keyword = "required"; line.actions = keywordActions(failure: .bad, ignore: true, success: .ok)
        case "requisite": line.keyword = "requisite"; line.actions = keywordActions(failure: .die, ignore: true, success: .ok)
        case "optional": line.keyword = "optional"; line.actions = keywordActions(failure: .ignore, ignore: false, success: .ok)
        case "sufficient": line.keyword = "sufficient"; line.actions = keywordActions(failure: .ignore, ignore: false, success: .done)
        case "include": line.kind = .include(substack: false)
        case "substack": line.kind = .include(substack: true)
        default:
            switch bracketActions(control.text) {
            case .success(let actions): line.actions = actions
            case .failure(let error):
                line.actions = Array(repeating: .bad, count: PAMCode.count)
                line.problem = line.problem ?? "control '\(line.controlText)': \(error.reason); libpam then treats every result as a failure"
            }
        }
    }

    /// required/requisite/optional/sufficient as `_pam_parse_conf_file` sets them.
    private static func keywordActions(failure: PAMAction, ignore: Bool, success: PAMAction) -> [PAMAction] {
        var actions = Array(repeating: failure, count: PAMCode.count)
        actions[Int(PAMCode.success)] = success
        actions[12] = success // new_authtok_reqd
        if ignore { actions[Int(PAMCode.ignore)] = .ignore }
        return actions
    }

    struct ControlError: Error { var reason: String }

    /// `_pam_parse_control`: `value=action` pairs; `default=` fills what is not set yet; what is
    /// left is `bad`. Any mistake makes the whole control `bad`.
    static func bracketActions(_ text: String) -> Result<[PAMAction], ControlError> {
        var actions: [PAMAction?] = Array(repeating: nil, count: PAMCode.count)
        // libpam allows blanks around '=' ("success = ok").
        var compact = text.replacingOccurrences(of: "\t", with: " ")
        while compact.contains(" =") || compact.contains("= ") {
            compact = compact.replacingOccurrences(of: " =", with: "=").replacingOccurrences(of: "= ", with: "=")
        }
        for pair in compact.split(separator: " ") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0) }
            guard parts.count == 2 else { return .failure(ControlError(reason: "'\(pair)' is not value=action")) }
            guard let action = action(parts[1]) else {
                return .failure(ControlError(reason: "'\(parts[1])' is not an action (ignore, ok, done, bad, die, reset or a jump count)"))
            }
            if parts[0] == "default" {
                for i in actions.indices where actions[i] == nil { actions[i] = action }
            } else if let index = PAMCode.tokens.firstIndex(of: parts[0]) {
                actions[index] = action
            } else {
                return .failure(ControlError(reason: "'\(parts[0])' is not a PAM return value"))
            }
        }
        return .success(actions.map { $0 ?? .bad })
    }

    private static func action(_ word: String) -> PAMAction? {
        switch word {
        case "ignore": return .ignore
        case "ok": return .ok
        case "done": return .done
        case "bad": return .bad
        case "die": return .die
        case "reset": return .reset
        default:
            guard let n = Int(word), n > 0 else { return nil }
            return .jump(n)
        }
    }
}
