import Foundation
import Testing
import TwofoldTestSupport
@testable import TwofoldDelivery

/// deliver.conf(5) and twofold-deliver(8) against what they describe: the keys and defaults of the
/// parser and of the shipped file, the options of --help; both pages lint clean.
@Suite("twofold-deliver's man pages")
struct DeliveryManPageTests {
    /// The `.It` heads of a section's top-level list, each with its lines up to the next.
    static func items(_ page: String, section: String) throws -> [(head: String, body: [String])] {
        let text = try String(contentsOfFile: TestPaths.root + "/docs/man/" + page, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: ".Sh " + section) else { return [] }
        var items: [(head: String, body: [String])] = []
        var depth = 0
        for line in lines[(start + 1)...] {
            if line.hasPrefix(".Sh ") { break }
            if line.hasPrefix(".Bl") { depth += 1; continue }
            if line.hasPrefix(".El") { depth -= 1; continue }
            if depth == 1 && line.hasPrefix(".It ") {
                items.append((String(line.dropFirst(4)), []))
            } else if !items.isEmpty {
                items[items.count - 1].body.append(line)
            }
        }
        return items
    }

    @Test("deliver.conf(5) documents exactly the parser's keys, each with the shipped default")
    func configPage() throws {
        var documented: [String: String] = [:]
        for item in try Self.items("deliver.conf.5", section: "KEYS") {
            let words = item.head.split(separator: " ").map(String.init)
            guard words.count >= 4, words[0] == "Cm", words[2] == "Li", words[3] == "=" else {
                Issue.record("deliver.conf.5: a key item is not '.It Cm KEY Li = ...': .It \(item.head)")
                continue
            }
            let defaults = item.body.filter { $0.hasPrefix("Default: ") }
            #expect(defaults.count == 1, "\(words[1]): \(defaults)")
            var value = String(defaults.first?.dropFirst("Default: ".count) ?? "")
            if value.hasSuffix(".") { value.removeLast() }
            documented[words[1]] = value == "empty" ? "" : value
        }
        #expect(Set(documented.keys) == Set(DeliveryConfigurationTests.parserKeys()), "\(documented.keys.sorted())")
        let shipped = try String(contentsOfFile: TestPaths.root + "/systemd/deliver.conf", encoding: .utf8)
        for (key, value) in documented {
            #expect(shipped.split(separator: "\n").contains { $0 == "#\(key) = \(value)" || ($0 == "#\(key) =" && value.isEmpty) },
                    "deliver.conf.5 says \(key) defaults to '\(value)'; systemd/deliver.conf does not")
        }
    }

    @Test("twofold-deliver(8) documents every long option of --help, and no other")
    func optionsPage() throws {
        let help = try ChildProcess.run([TestPaths.twofoldDeliver, "--help"])
        #expect(help.status == 0)
        let options = Set(help.output.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "(" || $0 == ")" })
            .filter { $0.hasPrefix("--") && $0.dropFirst(2).first?.isLetter == true }.map(String.init))
        #expect(options.isSuperset(of: ["--config", "--check-config", "--help", "--version"]), "\(options)")
        var documented = Set<String>()
        for item in try Self.items("twofold-deliver.8", section: "OPTIONS") {
            documented.formUnion(item.head.split(separator: " ").filter { $0.hasPrefix("-") && $0.count > 1 }.map { "-" + $0 })
        }
        #expect(documented == options, "documented \(documented.sorted()), --help \(options.sorted())")
    }

    @Test("both pages lint clean under mandoc -T lint and groff -ww", arguments: ["twofold-deliver.8", "deliver.conf.5"])
    func lint(page: String) throws {
        let path = TestPaths.root + "/docs/man/" + page
        let lint = try ChildProcess.run(["/usr/bin/mandoc", "-T", "lint", "-W", "warning", path])
        #expect(lint.status == 0 && lint.output.isEmpty, "\(lint.output)")
        let typeset = try ChildProcess.run(["/usr/bin/groff", "-ww", "-z", "-mandoc", path])
        #expect(typeset.status == 0 && typeset.output.isEmpty, "\(typeset.output)")
    }
}
