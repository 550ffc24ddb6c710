/// Checks an answer against all of a user's OTP factors at once, so that neither the verdict nor
/// the time taken says which factor failed (or which matched).
public enum FactorSet {
    /// Every factor checks `answer` (no early exit). The first accepted wins (in the given order);
    /// else a replay on any factor; else rejected if any factor claims the form; else malformed.
    public static func check(_ answer: String, factors: [any Factor], nowMillis: Int64, policy: WindowPolicy) -> FactorVerdict {
        var accepted: FactorUse?
        var replay = false
        var rejected = false
        for factor in factors {
            switch factor.check(answer, nowMillis: nowMillis, policy: policy) {
            case .accepted(let use): if accepted == nil { accepted = use }
            case .replay: replay = true
            case .rejected: rejected = true
            case .malformed: break
            }
        }
        if let accepted { return .accepted(accepted) }
        if replay { return .replay }
        return rejected ? .rejected : .malformed
    }

    /// Whether any of `factors` claims the form of `answer`.
    public static func claims(_ answer: String, factors: [any Factor]) -> Bool {
        factors.contains { $0.claims(answer) }
    }
}
