/// Helpers for selecting a result without branching on secret-dependent comparisons.
enum BranchFree {
    /// All ones when `flag` is true, zero otherwise (Bool is stored as 0 or 1).
    @inline(__always)
    static func mask(_ flag: Bool) -> Int64 {
        0 &- Int64(unsafeBitCast(flag, to: UInt8.self))
    }

    /// `ifSet` where `mask` is all ones, `otherwise` where it is zero.
    @inline(__always)
    static func select(_ mask: Int64, _ ifSet: Int64, _ otherwise: Int64) -> Int64 {
        (ifSet & mask) | (otherwise & ~mask)
    }
}
