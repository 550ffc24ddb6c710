import Foundation

/// One entry of a service's stack for one type, in the order libpam runs it, includes expanded.
struct PAMStackItem {
    enum Role: Equatable {
        case module
        /// The entry libpam adds for `substack FILE`: skipped when run, it makes the substack's
        /// modules (one level deeper) count as one in a jump.
        case substackMarker
        /// A line libpam cannot use (bad syntax, an include it cannot open): it always fails.
        case mustFail
    }

    var line: PAMLine
    var role: Role
    var level: Int
}

/// A service's stack of one type, and what went wrong assembling it.
struct PAMStack {
    var items: [PAMStackItem] = []
    /// Include lines whose file is missing (each makes its stack fail).
    var missingIncludes: [PAMLine] = []
    /// A problem that keeps libpam from loading the service at all (Debian's `@include` of a
    /// missing file: pam_start fails with PAM_ABORT).
    var fatal: String?
}

/// The files of a PAM configuration directory, read once each.
final class PAMConfigDirectory {
    let path: String
    private var cache: [String: [PAMLine]?] = [:]

    /// libpam stops at 16 levels of includes (PAM_SUBSTACK_MAX_LEVEL).
    static let maxDepth = 16

    init(path: String) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    /// The service names: the regular files of the directory, without the `common-*` files
    /// Debian's services include and backup or package-manager leftovers.
    func services() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).filter { name in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue else { return false }
            return !name.hasPrefix(".") && !name.hasPrefix("common-") && !name.hasSuffix("~")
                && !name.contains(".dpkg-") && !name.hasSuffix(".ucf-old") && !name.hasSuffix(".ucf-dist")
        }.sorted()
    }

    /// An include's file: relative names are looked up in this directory (libpam looks in
    /// /etc/pam.d; `--pam-dir` stands for it).
    func filePath(_ name: String) -> String {
        name.hasPrefix("/") ? name : path + "/" + name
    }

    /// The logical lines of a file, or nil when it cannot be read.
    func lines(_ file: String) -> [PAMLine]? {
        if let cached = cache[file] { return cached }
        let text = try? String(contentsOfFile: file, encoding: .utf8)
        let lines = text.map { text in
            PAMConfigReader.logicalLines(text).map { PAMConfigReader.parse($0.text, file: file, number: $0.number) }
        }
        cache[file] = lines
        return lines
    }

    /// The stack of `type` for the service file `file`.
    func stack(_ file: String, type: PAMType) -> PAMStack {
        var stack = PAMStack()
        append(file, type: type, level: 0, depth: 0, to: &stack)
        return stack
    }

    private func append(_ file: String, type: PAMType, level: Int, depth: Int, to stack: inout PAMStack) {
        guard let lines = lines(file) else { return }
        for line in lines {
            switch line.kind {
            case .atInclude:
                guard let target = line.target, self.lines(filePath(target)) != nil else {
                    stack.fatal = stack.fatal ?? "\(line.location): @include \(line.target ?? "(nothing)"): no such file; libpam cannot load the service at all (PAM_ABORT)"
                    continue
                }
                if depth + 1 < Self.maxDepth { append(filePath(target), type: type, level: level, depth: depth + 1, to: &stack) }
            case .include(let substack):
                guard (line.type ?? .auth) == type else { continue }
                if substack { stack.items.append(PAMStackItem(line: line, role: .substackMarker, level: level)) }
                if let target = line.target, self.lines(filePath(target)) != nil, depth + 1 < Self.maxDepth, line.type != nil {
                    append(filePath(target), type: type, level: level + (substack ? 1 : 0), depth: depth + 1, to: &stack)
                } else {
                    stack.missingIncludes.append(line)
                    stack.items.append(PAMStackItem(line: line, role: .mustFail, level: level))
                }
            case .module:
                // A line with a bad type goes to the auth stack ("most sensitive") and always fails.
                guard (line.type ?? .auth) == type else { continue }
                stack.items.append(PAMStackItem(line: line, role: line.problem == nil ? .module : .mustFail, level: level))
            }
        }
    }

    /// Every line of the service's file and of the files it includes (for line-level checks).
    func allLines(_ file: String) -> [PAMLine] {
        var seen: Set<String> = []
        var result: [PAMLine] = []
        func visit(_ file: String, depth: Int) {
            guard depth < Self.maxDepth, !seen.contains(file), let lines = lines(file) else { return }
            seen.insert(file)
            for line in lines {
                result.append(line)
                if line.kind != .module, let target = line.target { visit(filePath(target), depth: depth + 1) }
            }
        }
        visit(file, depth: 0)
        return result
    }
}
