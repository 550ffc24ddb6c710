/// libpam's walk of a module stack (`_pam_dispatch_aux` in Linux-PAM 1.5, for pam_authenticate),
/// replayed with the return value each module is assumed to give. `doctor` asks it what a stack
/// does when pam_twofold succeeds, fails or steps aside.
enum PAMDispatch {
    struct Run {
        /// What pam_authenticate returns.
        var result: Int32
        /// The indexes of the items whose module ran, in order.
        var executed: [Int]
        /// The item whose `done`, `die` or jump ended or shortened the walk last, if any.
        var decidedBy: Int?

        var succeeded: Bool { result == PAMCode.success }
    }

    private enum Impression { case undefined, positive, negative }

    private struct State {
        var impression = Impression.undefined
        var status = PAMCode.permDenied
        var saved: [Int: (Impression, Int32)] = [0: (.undefined, PAMCode.permDenied)]
        var run = Run(result: PAMCode.permDenied, executed: [])
    }

    /// Walks `items`; `result(index)` is what the module of item `index` returns.
    static func run(_ items: [PAMStackItem], result: (Int) -> Int32) -> Run {
        var state = State()
        var index = 0
        var previousLevel = 0
        while index < items.count {
            let level = items[index].level
            if previousLevel < level { state.saved[level] = (state.impression, state.status) }
            previousLevel = level
            if items[index].role == .substackMarker { index += 1; continue }
            var code = PAMCode.permDenied
            if items[index].role == .module {
                code = result(index)
                state.run.executed.append(index)
            }
            // A return value libpam does not know is `bad`; so is every result of a line without actions.
            let actions = items[index].line.actions
            let action: PAMAction = code >= 0 && Int(code) < actions.count ? actions[Int(code)] : .bad
            index = apply(action, code: code, at: index, level: level, items: items, state: &state)
        }
        if state.status == PAMCode.success && state.impression != .positive { state.status = PAMCode.permDenied }
        state.run.result = state.status
        return state.run
    }

    /// One module's result; returns the index of the next item to run.
    private static func apply(_ action: PAMAction, code: Int32, at index: Int, level: Int, items: [PAMStackItem],
                              state: inout State) -> Int {
        switch action {
        case .reset:
            (state.impression, state.status) = state.saved[level] ?? (.undefined, PAMCode.permDenied)
        case .ok, .done:
            if state.impression == .undefined || (state.impression == .positive && state.status == PAMCode.success) {
                state.impression = .positive
                state.status = code
            }
            if state.impression == .positive && action == .done {
                state.run.decidedBy = index
                return endOfLevel(after: index, level: level, items: items)
            }
        case .bad, .die:
            if state.impression != .negative {
                state.impression = .negative
                state.status = code == PAMCode.ignore ? PAMCode.permDenied : code
            }
            if action == .die {
                state.run.decidedBy = index
                return endOfLevel(after: index, level: level, items: items)
            }
        case .ignore:
            break
        case .jump(let count):
            var last = index
            var left = count
            while last + 1 < items.count && items[last + 1].level >= level && left > 0 {
                repeat { last += 1 } while last + 1 < items.count && items[last + 1].level > level
                left -= 1
            }
            if left > 0 {
                // "bad jump in stack": past the end of the (sub)stack.
                state.impression = .negative
                state.status = PAMCode.permDenied
            }
            state.run.decidedBy = index
            return last + 1
        }
        return index + 1
    }

    /// `decision_made`: skip the rest of this level (a substack's `done` ends only the substack).
    private static func endOfLevel(after index: Int, level: Int, items: [PAMStackItem]) -> Int {
        var last = index
        while last + 1 < items.count && items[last + 1].level >= level { last += 1 }
        return last + 1
    }
}
