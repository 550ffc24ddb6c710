import Foundation
import TwofoldProtocol

/// The Users section: who the policy in force requires and would refuse at the next login
/// (`policyImpact(proposed: nil)`, over the users Twofold knows, `getent passwd` and the members
/// of the required groups), who is in a grace period, and what the daemon could not list.
struct UsersCheck {
    let session: DaemonSession

    struct Report: Encodable {
        struct Refused: Encodable { var user: String; var enrollment: String; var because: String }
        struct Grace: Encodable { var user: String; var graceUntilMillis: Int64; var graceUntil: String }
        var considered: Int
        var required: Int
        var refused: Int
        var sources: [String]
        var notes: [String]
        var refusedUsers: [Refused]
        var graceUsers: [Grace]
        var truncated: Bool
    }

    struct Result {
        var findings: [Finding] = []
        var report: Report?
        var policy: PolicyDocument?
        var impact: PolicyImpact?
        var failure: CLIFailure?
    }

    static let enrollFix = "enroll USER: `twofoldctl import USER --uri -` with the secret from their app (or USER runs `twofoldctl enroll` in a session still open); or exempt: `twofoldctl user exempt USER`; or give time: `twofoldctl policy set --unenrolled grace --grace-days 14`"

    func run() -> Result {
        var result = Result()
        do throws(CLIFailure) {
            let policyResponse = try session.send(.policyShow)
            guard case .policy(let policy) = policyResponse else { throw unexpected(policyResponse) }
            let impactResponse = try session.send(.policyImpact(proposed: nil))
            guard case .policyImpact(let impact) = impactResponse else { throw unexpected(impactResponse) }
            let grace = impact.users.filter { $0.atLogin == .grace }
            result.policy = policy
            result.impact = impact
            result.report = report(impact, grace: grace)
            result.findings = findings(impact, grace: grace)
        } catch {
            result.failure = error
            result.findings = [.error("users.not-checked", subject: session.socketPath, "cannot ask twofoldd who would be refused: \(error.message)",
                                      fix: "run `sudo twofoldctl doctor` with the daemon running")]
        }
        return result
    }

    private func report(_ impact: PolicyImpact, grace: [PolicyImpact.Entry]) -> Report {
        Report(considered: impact.usersConsidered, required: impact.requiredAfter, refused: impact.refused,
               sources: impact.sources, notes: impact.notes,
               refusedUsers: impact.users.filter { $0.atLogin == .refused }.map { .init(user: $0.user, enrollment: $0.enrollment, because: $0.because) },
               graceUsers: grace.map { .init(user: $0.user, graceUntilMillis: $0.graceUntilMillis ?? 0, graceUntil: Format.time(millis: $0.graceUntilMillis ?? 0)) },
               truncated: impact.truncated)
    }

    private func findings(_ impact: PolicyImpact, grace: [PolicyImpact.Entry]) -> [Finding] {
        var findings: [Finding] = [.ok("users.summary", subject: "policy in force",
                                       "\(impact.usersConsidered) users considered (\(impact.sources.joined(separator: ", "))); \(impact.requiredAfter) required; \(impact.refused == 0 ? "none" : String(impact.refused)) refused at the next login")]
        for entry in impact.users where entry.atLogin == .refused {
            let state = entry.enrollment == "pending" ? "has not confirmed enrollment" : "has not enrolled"
            findings.append(.error("users.refused", subject: entry.user,
                                   "required (\(entry.because)) but \(state): refused at the next login",
                                   fix: Self.enrollFix.replacingOccurrences(of: "USER", with: entry.user)))
        }
        if impact.truncated {
            findings.append(.warning("users.truncated", subject: "\(impact.refused) users",
                                     "more users would be refused than the daemon lists (\(PolicyImpact.maxListed)); the rest are counted, not named",
                                     fix: "`twofoldctl users --json` lists every user Twofold knows"))
        }
        for entry in grace {
            let until = Format.time(millis: entry.graceUntilMillis ?? 0)
            findings.append(.warning("users.grace", subject: entry.user,
                                     "required (\(entry.because)) and not enrolled: let in without a code until \(until), refused after",
                                     fix: Self.enrollFix.replacingOccurrences(of: "USER", with: entry.user).components(separatedBy: "; or exempt")[0] + ", before then"))
        }
        for note in impact.notes {
            let fix = note.contains("does not exist")
                ? "create the group, or correct the policy: `twofoldctl policy set --required-groups GROUP,...`"
                : "check those users by name (`twofoldctl user show NAME`); sssd lists them with `enumerate = true`"
            findings.append(.warning("users.incomplete", subject: "user list", note, fix: fix))
        }
        return findings
    }
}
