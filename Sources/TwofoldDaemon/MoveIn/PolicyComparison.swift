import Foundation
import TwofoldProtocol

/// The host's stored policy against the tier's, field by field (`twofoldd move-in` reports it and
/// merges nothing: a fleet has one policy, and the tier's applies to the host's logins from now on).
enum PolicyComparison {
    /// Sets the report's `policy` and `policyDifferences`. `host` is the host's stored policy
    /// text (nil: none stored; its config file's keys applied there, which this cannot see).
    static func compare(host: String?, tier: PolicyDocument, into report: inout MoveInReport) {
        guard let host else {
            report.policy = "none on the host"
            return
        }
        guard let document = try? ControlCodec.decodeJSON(PolicyDocument.self, from: Array(host.utf8)),
              let hostFields = fields(document), let tierFields = fields(tier) else {
            report.policy = "unreadable on the host"
            return
        }
        report.policyDifferences = Set(hostFields.keys).union(tierFields.keys).sorted().compactMap { field in
            let a = hostFields[field] ?? "unset", b = tierFields[field] ?? "unset"
            return a == b ? nil : MoveInReport.PolicyDifference(field: field, host: a, tier: b)
        }
        report.policy = report.policyDifferences.isEmpty ? "same" : "different"
    }

    /// Each top-level field of the document as compact JSON with sorted keys.
    private static func fields(_ document: PolicyDocument) -> [String: String]? {
        guard let data = try? JSONEncoder().encode(document),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        var fields: [String: String] = [:]
        for (key, value) in object {
            guard let text = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return nil }
            fields[key] = String(decoding: text, as: UTF8.self)
        }
        return fields
    }
}
