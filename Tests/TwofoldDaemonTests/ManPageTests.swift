import Foundation
import Testing
import TwofoldTestSupport
@testable import TwofoldDaemon

/// The hand-written man pages in docs/man against what they describe: twofoldd.conf(5) against the
/// shipped config file and the parser, pam_twofold(8) against the module's option parser,
/// twofoldd(8) against `twofoldd --help`; and every page, twofoldctl.1 included, lint clean.
@Suite("man pages")
struct ManPageDriftTests {
    static let manDirectory = TestPaths.root + "/docs/man"

    static func read(_ relativePath: String) throws -> String {
        try String(contentsOfFile: TestPaths.root + "/" + relativePath, encoding: .utf8)
    }

    @Test("twofoldd.conf(5) documents exactly the keys of the shipped twofoldd.conf, with the same defaults")
    func configPageMatchesShippedFile() throws {
        let page = try ManPage(Self.read("docs/man/twofoldd.conf.5"))
        let items = page.items(section: "KEYS")
        var documented: [String: String] = [:]
        for item in items {
            // ".It Cm KEY Li = Ar VALUE"
            let words = item.head.split(separator: " ").map(String.init)
            guard words.count >= 5, words[0] == "Cm", words[2] == "Li", words[3] == "=" else {
                Issue.record("twofoldd.conf.5: a key item is not '.It Cm KEY Li = Ar VALUE': .It \(item.head)")
                continue
            }
            let key = words[1]
            let defaults = item.body.filter { $0.hasPrefix("Default: ") }
            guard defaults.count == 1 else {
                Issue.record("twofoldd.conf.5: \(key) needs exactly one line 'Default: VALUE', has \(defaults.count)")
                continue
            }
            #expect(documented[key] == nil, "twofoldd.conf.5 documents \(key) twice")
            documented[key] = Self.defaultValue(defaults[0])
        }

        let shipped = try Self.shippedDefaults()
        #expect(shipped.count >= 30, "the shipped file lists \(shipped.count) keys: the parser of the test is broken")
        for (key, value) in shipped.sorted(by: { $0.key < $1.key }) {
            if let pageValue = documented[key] {
                #expect(pageValue == value, "\(key): twofoldd.conf.5 says the default is '\(pageValue)', systemd/twofoldd.conf '\(value)'")
            } else {
                Issue.record("\(key) is in systemd/twofoldd.conf but not in twofoldd.conf.5")
            }
        }
        for key in documented.keys.sorted() where shipped[key] == nil {
            Issue.record("twofoldd.conf.5 documents \(key), which systemd/twofoldd.conf does not list")
        }

        // The parser accepts exactly these keys, and each documented default is the code's.
        let parserKeys = try Self.parserKeys()
        let undocumented = parserKeys.subtracting(documented.keys), unknown = Set(documented.keys).subtracting(parserKeys)
        #expect(undocumented.isEmpty, "DaemonConfiguration.set accepts \(undocumented.sorted()), which twofoldd.conf.5 does not document")
        #expect(unknown.isEmpty, "twofoldd.conf.5 documents \(unknown.sorted()), which DaemonConfiguration.set does not accept")
        let defaults = DaemonConfiguration()
        for (key, value) in documented.sorted(by: { $0.key < $1.key }) {
            guard !value.isEmpty else {
                // An empty value that parses must be the default (admin_group, required_groups);
                // grace_days takes no empty value: its default is "no grace", which the file cannot spell.
                if let parsed = try? DaemonConfiguration.parse("\(key) =") {
                    #expect(parsed == defaults, "\(key) = (empty) is not the default")
                }
                continue
            }
            let parsed: DaemonConfiguration
            do {
                parsed = try DaemonConfiguration.parse("\(key) = \(value)")
            } catch {
                Issue.record("the documented default of \(key) does not parse: \(error)")
                continue
            }
            switch key {
            // Derived from state_directory: setting the same path explicitly is the same configuration.
            case "database": #expect(parsed.resolvedDatabasePath == defaults.resolvedDatabasePath, "\(key) = \(value)")
            case "key_file": #expect(parsed.resolvedKeyFile == defaults.resolvedKeyFile, "\(key) = \(value)")
            default: #expect(parsed == defaults, "\(key) = \(value) is not the code's default")
            }
        }

        // Each key says whether SIGHUP reloads it; exactly the locations need a restart.
        var restart: Set<String> = []
        for item in items {
            guard let key = item.head.split(separator: " ").dropFirst().first.map(String.init) else { continue }
            let text = item.body.joined(separator: " ")
            let reloads = text.contains("eloaded by SIGHUP")
            let restarts = text.contains("Needs a restart")
            #expect(reloads != restarts, "\(key): say either 'Reloaded by SIGHUP' or 'Needs a restart'")
            if restarts { restart.insert(key) }
        }
        #expect(restart == Set(LiveConfiguration.restartOnlyKeys))
    }

    @Test("pam_twofold(8) documents every option the module's parser accepts, and no other")
    func pamPageMatchesParser() throws {
        let literals = try PAMModuleSource.optionLiterals()
        let names = Set(literals.map { String($0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]) })
        #expect(names.isSuperset(of: ["socket", "timeout", "failmode", "debug"]), "found \(names.sorted()) in pam_twofold.c: the test's parser is broken")

        let page = try ManPage(Self.read("docs/man/pam_twofold.8"))
        var documented: [String: String] = [:]
        for item in page.items(section: "OPTIONS") {
            // ".It Cm NAME [Ns = Ns ...]"
            let words = item.head.split(separator: " ").map(String.init)
            guard words.count >= 2, words[0] == "Cm" else {
                Issue.record("pam_twofold.8: an option item is not '.It Cm NAME ...': .It \(item.head)")
                continue
            }
            documented[words[1]] = item.head
        }
        for name in names.sorted() where documented[name] == nil {
            Issue.record("pam_twofold.c accepts \(name), which pam_twofold.8 does not document")
        }
        for name in documented.keys.sorted() where !names.contains(name) {
            Issue.record("pam_twofold.8 documents \(name), which pam_twofold.c does not accept")
        }
        // Fixed values (failmode=closed, failmode=open) appear in their item's head.
        for literal in literals {
            let parts = literal.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let head = documented[parts[0]] else { continue }
            #expect(head.split(separator: " ").contains { $0 == parts[1] }, "pam_twofold.8: \(parts[0]) does not show the value \(parts[1])")
        }
        // And the synopsis lists each option.
        let synopsis = Set(page.lines(section: "SYNOPSIS").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count >= 3 && words[0] == ".Op" && words[1] == "Cm" ? String(words[2]) : nil
        })
        #expect(synopsis == names, "SYNOPSIS lists \(synopsis.sorted()), the parser accepts \(names.sorted())")
    }

    @Test("twofoldd(8) documents every long option of twofoldd --help")
    func daemonPageMatchesHelp() throws {
        let help = try run([TestPaths.twofoldd, "--help"])
        #expect(help.status == 0, "\(help.output)")
        let options = Set(Self.longOptions(in: help.output))
        #expect(options.isSuperset(of: ["--config", "--check-config", "--help"]), "found \(options.sorted()) in --help: the test's parser is broken")

        let page = try ManPage(Self.read("docs/man/twofoldd.8"))
        var documented: Set<String> = []
        for item in page.items(section: "OPTIONS") {
            // ".It Fl -NAME Ar ARG" or ".It Fl h , -help": the long names are the words starting with '-'.
            let words = item.head.split(separator: " ")
            guard words.first == "Fl" else {
                Issue.record("twofoldd.8: an option item is not '.It Fl ...': .It \(item.head)")
                continue
            }
            documented.formUnion(words.filter { $0.hasPrefix("-") && $0.count > 1 }.map { "-" + $0 })
        }
        for option in options.sorted() where !documented.contains(option) {
            Issue.record("twofoldd --help has \(option), which twofoldd.8 does not document")
        }
        // --version is documented ahead of the daemon that has it (added on main).
        for option in documented.sorted() where !options.contains(option) && option != "--version" {
            Issue.record("twofoldd.8 documents \(option), which twofoldd --help does not list")
        }
    }

    @Test("twofoldd(8) says for every key of twofoldd.conf(5) what SIGHUP does with it, as twofoldd.conf(5) does")
    func reloadListsMatchConfigPage() throws {
        let config = try ManPage(Self.read("docs/man/twofoldd.conf.5")).items(section: "KEYS")
        let keys = Set(config.compactMap { $0.head.split(separator: " ").dropFirst().first.map(String.init) })
        let restartKeys = Set(config.filter { $0.body.joined(separator: " ").contains("Needs a restart") }
            .compactMap { $0.head.split(separator: " ").dropFirst().first.map(String.init) })
        guard let hup = try ManPage(Self.read("docs/man/twofoldd.8")).items(section: "SIGNALS").first(where: { $0.head == "Dv SIGHUP" }) else {
            Issue.record("twofoldd.8: no '.It Dv SIGHUP' in SIGNALS")
            return
        }
        // The keys are named on ".Cm" lines; the last paragraph names those that need a restart.
        func named(_ lines: some Sequence<String>) -> Set<String> {
            Set(lines.filter { $0.hasPrefix(".Cm ") }.flatMap { $0.split(separator: " ").dropFirst() }
                .map(String.init).filter { $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" } })
        }
        let lastParagraph = hup.body.lastIndex(of: ".Pp").map { hup.body[$0...] } ?? []
        #expect(named(hup.body) == keys, "SIGHUP in twofoldd.8 names \(named(hup.body).sorted()); the keys are \(keys.sorted())")
        #expect(named(lastParagraph) == restartKeys, "twofoldd.8 says \(named(lastParagraph).sorted()) need a restart, twofoldd.conf.5 \(restartKeys.sorted())")
    }

    @Test("every page in docs/man lints clean under mandoc -T lint and groff -ww")
    func pagesLintClean() throws {
        let pages = try FileManager.default.contentsOfDirectory(atPath: Self.manDirectory)
            .filter { ["1", "5", "8"].contains(($0 as NSString).pathExtension) }
            .sorted()
        #expect(Set(pages).isSuperset(of: ["twofoldctl.1", "twofoldd.8", "twofoldd.conf.5", "pam_twofold.8"]), "\(pages)")
        let mandoc = "/usr/bin/mandoc", groff = "/usr/bin/groff"
        for tool in [mandoc, groff] where !FileManager.default.isExecutableFile(atPath: tool) {
            Issue.record("\(tool) is missing: scripts/install-deps.sh installs it (packages mandoc, groff-base)")
            return
        }
        for page in pages {
            let path = Self.manDirectory + "/" + page
            let lint = try run([mandoc, "-T", "lint", "-W", "warning", path])
            #expect(lint.status == 0 && lint.output.isEmpty, "mandoc -T lint -W warning \(page):\n\(lint.output)")
            let typeset = try run([groff, "-ww", "-z", "-mandoc", path])
            #expect(typeset.status == 0 && typeset.output.isEmpty, "groff -ww -z -mandoc \(page):\n\(typeset.output)")
        }
    }

    // MARK: - Sources of truth

    /// The commented-out "#key = value" lines of systemd/twofoldd.conf.
    static func shippedDefaults() throws -> [String: String] {
        var result: [String: String] = [:]
        for line in try read("systemd/twofoldd.conf").split(separator: "\n") {
            guard line.hasPrefix("#"), let first = line.dropFirst().first, first.isLetter,
                  let eq = line.firstIndex(of: "=") else { continue }
            let key = line[line.index(after: line.startIndex)..<eq].trimmingCharacters(in: .whitespaces)
            result[key] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return result
    }

    /// The keys `DaemonConfiguration.set(key:value:at:)` switches on.
    /// The keys of the `set(key:…)` switches: DaemonConfiguration's, FleetConfiguration's and DeliveryConfiguration's.
    static func parserKeys() throws -> Set<String> {
        var keys = Set<String>()
        for file in ["Sources/TwofoldDaemon/DaemonConfiguration.swift", "Sources/TwofoldDaemon/Fleet/FleetConfiguration.swift",
                     "Sources/TwofoldDaemon/Delivery/DeliveryConfiguration.swift", "Sources/TwofoldDaemon/Fido2/Fido2Configuration.swift",
                     "Sources/TwofoldDaemon/SSHKeys/SSHKeyConfiguration.swift"] {
            let source = try read(file)
            guard let start = source.range(of: "func set(key:"), let end = source.range(of: "default:", range: start.upperBound..<source.endIndex) else {
                throw HarnessError("\(file): no set(key:) switch found")
            }
            let regex = try NSRegularExpression(pattern: #"case "([a-z0-9_]+)""#)
            let body = String(source[start.upperBound..<end.lowerBound])
            keys.formUnion(regex.matches(in: body, range: NSRange(body.startIndex..., in: body)).compactMap {
                Range($0.range(at: 1), in: body).map { String(body[$0]) }
            })
        }
        return keys
    }

    static func longOptions(in help: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: #"(?<![\w-])--[a-z][a-z0-9-]*"#)
        return regex.matches(in: help, range: NSRange(help.startIndex..., in: help)).compactMap {
            Range($0.range, in: help).map { String(help[$0]) }
        }
    }

    /// "Default: X." → X; "Default: empty ..." → "".
    static func defaultValue(_ line: String) -> String {
        var word = line.dropFirst("Default: ".count).split(separator: " ").first.map(String.init) ?? ""
        if let last = word.last, ".,;".contains(last) { word.removeLast() }
        return word == "empty" ? "" : word
    }
}

/// Just enough of an mdoc page: the lines of a section, and the items of its top-level lists.
struct ManPage {
    struct Item {
        /// The ".It" line without ".It ".
        var head: String
        /// The lines up to the next item of the same list, nested lists included.
        var body: [String]
    }

    let lines: [String]

    init(_ text: String) throws {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.contains(where: { $0.hasPrefix(".Sh ") }) else { throw HarnessError("not an mdoc page") }
    }

    /// The lines after ".Sh NAME" up to the next ".Sh".
    func lines(section name: String) -> [String] {
        guard let start = lines.firstIndex(of: ".Sh " + name) else { return [] }
        let rest = lines[(start + 1)...]
        return Array(rest.prefix { !$0.hasPrefix(".Sh ") })
    }

    /// The items of the section's outermost lists (one per subsection is fine).
    func items(section name: String) -> [Item] {
        var items: [Item] = []
        var depth = 0
        var inItem = false
        for line in lines(section: name) {
            if line == ".Bl" || line.hasPrefix(".Bl ") {
                depth += 1
                if depth == 1 { inItem = false; continue }
            } else if line == ".El" || line.hasPrefix(".El ") {
                depth -= 1
                if depth == 0 { inItem = false; continue }
            } else if depth == 1 && line.hasPrefix(".It ") {
                items.append(Item(head: String(line.dropFirst(4)), body: []))
                inItem = true
                continue
            }
            if inItem { items[items.count - 1].body.append(line) }
        }
        return items
    }
}
