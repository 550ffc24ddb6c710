import TwofoldCore

/// How both backends store a user's factor kinds override: comma-separated, in
/// `FactorKind.allCases` order; NULL for the policy's.
package enum FactorKindsColumn {
    package static func text(_ kinds: Set<FactorKind>?) -> String? {
        kinds.map { set in FactorKind.allCases.filter(set.contains).map(\.rawValue).joined(separator: ",") }
    }
}
