import TwofoldCore

/// How both backends store a user's factor kinds override: comma-separated, in
/// `FactorKind.allCases` order; NULL for the policy's.
package enum FactorKindsColumn {
    package static func text(_ kinds: Set<FactorKind>?) -> String? {
        kinds.map { set in FactorKind.allCases.filter(set.contains).map(\.rawValue).joined(separator: ",") }
    }
}

/// The columns of a user's row that hold an admin's per-user override (`setRequirement`,
/// `setFactorKinds`, `setSSHKeyRule`): each set alone, the row made if needed, by one upsert both
/// backends build from this closed list (the name goes into the SQL, never a caller's text).
package enum UserOverrideColumn: String, Sendable {
    case requirement
    case factorKinds = "factor_kinds"
    case sshKeyRule = "ssh_key_rule"
}
