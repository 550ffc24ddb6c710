// The three copies of the wire's tables agree: the Swift codec (FieldTag, ClientCapabilities), the
// C module's pam/twofold_wire.h and docs/protocol.md. A tag or capability added to one and not the
// others fails here.

import Foundation
import Testing
import TwofoldProtocol
import TwofoldTestSupport

@Suite("Wire tables: Swift, C and docs/protocol.md agree")
struct WireTableTests {
    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: TestPaths.root + "/" + path, encoding: .utf8)
    }

    /// `NAME → value` for every `prefix NAME = 0x..,` enumerator or `#define prefixNAME N[u]` in the header.
    static func constants(_ header: String, prefix: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in header.split(separator: "\n") {
            let words = line.split(whereSeparator: { " \t=,".contains($0) }).map(String.init)
            guard let index = words.firstIndex(where: { $0.hasPrefix(prefix) }), index + 1 < words.count else { continue }
            guard words[0] == "#define" || index == 0 else { continue }
            var literal = words[index + 1]
            if literal.hasSuffix("u") { literal.removeLast() }
            let value = literal.hasPrefix("0x") ? Int(literal.dropFirst(2), radix: 16) : Int(literal)
            if let value { out[String(words[index].dropFirst(prefix.count))] = value }
        }
        return out
    }

    /// Each row of the first table after `heading` in the doc, as trimmed cells.
    static func table(_ doc: String, after heading: String) throws -> [[String]] {
        guard let start = doc.range(of: heading) else { throw HarnessError("no \(heading) in docs/protocol.md") }
        var rows: [[String]] = []
        for line in doc[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("|") {
                rows.append(line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) })
            } else if !rows.isEmpty {
                break
            }
        }
        return rows
    }

    /// `8192` as the docs write it: `8,192`.
    static func grouped(_ value: Int) -> String {
        let digits = Array(String(value))
        return String(digits.enumerated().flatMap { index, digit in
            index > 0 && (digits.count - index) % 3 == 0 ? [",", digit] : [digit]
        })
    }

    static func hex(_ value: Int, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    @Test("every field tag: the same number and bound in twofold_wire.h and in the docs' field table")
    func fieldTags() throws {
        let header = try Self.read("pam/twofold_wire.h")
        let tags = Self.constants(header, prefix: "TF_TAG_")
        let bounds = Self.constants(header, prefix: "TF_BOUND_")
        #expect(Set(tags.keys) == Set(FieldTag.allCases.map(\.name)), "C tags \(tags.keys.sorted())")
        let rows = try Self.table(try Self.read("docs/protocol.md"), after: "## Field tags and bounds")
        for tag in FieldTag.allCases {
            #expect(tags[tag.name] == Int(tag.rawValue), "TF_TAG_\(tag.name)")
            #expect(bounds[tag.name] == tag.bound, "TF_BOUND_\(tag.name)")
            let row = rows.first { $0.first == Self.hex(Int(tag.rawValue), digits: 2) }
            #expect(row?.count ?? 0 >= 3 && row?[1] == tag.name, "docs row for \(tag.name): \(String(describing: row))")
            let bound = Self.grouped(tag.bound)
            #expect(row.map { $0[2].hasPrefix(bound) } == true, "docs bound for \(tag.name): \(String(describing: row))")
        }
        #expect(rows.count == 2 + FieldTag.allCases.count, "the docs list a tag the codec does not know: \(rows)")
    }

    @Test("every capability bit: the same mask in twofold_wire.h (TF_CAP_*) and in the docs' capability table")
    func capabilityBits() throws {
        let caps = Self.constants(try Self.read("pam/twofold_wire.h"), prefix: "TF_CAP_")
        let rows = try Self.table(try Self.read("docs/protocol.md"), after: "**CAPABILITIES**")
        var known: [String: Int] = [:]
        for bit in 0..<32 {
            let name = ClientCapabilities(rawValue: 1 << bit).description
            guard !name.hasPrefix("0x") else { continue }  // not assigned
            known[name] = 1 << bit
            #expect(rows.contains { $0.count >= 3 && $0[0] == "\(bit)" && $0[1] == Self.hex(1 << bit, digits: 8) && $0[2] == name },
                    "docs row for bit \(bit) \(name): \(rows)")
        }
        #expect(known == ["BINARY_PAYLOAD": 1, "FIDO2": 2], "the capabilities this version knows")
        #expect(caps == known, "TF_CAP_* in twofold_wire.h: \(caps)")
    }
}
