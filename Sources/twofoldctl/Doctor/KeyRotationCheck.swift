import TwofoldProtocol

/// The Key section's rotation check: previous keys still configured. Only then does it ask the
/// daemon to count the secrets by key (`rekey --check`, a scan of every sealed value), so a daemon
/// outside a rotation costs nothing.
struct KeyRotationCheck {
    let session: DaemonSession

    func findings(_ info: ServerInfo) -> [Finding] {
        guard let sealing = info.sealingKeyID, let previous = info.previousKeyIDs, !previous.isEmpty else { return [] }
        let subject = "key \(sealing)"
        let report: RekeyReport
        do throws(CLIFailure) {
            let response = try session.send(.rekey(check: true, cursor: nil))
            guard case .rekey(let answer) = response else { throw unexpected(response) }
            report = answer
        } catch {
            return [.warning("key.rotation", subject: subject, "previous keys \(previous.joined(separator: ", ")) are configured; twofoldd could not count the secrets by key: \(error.message)",
                             fix: "`twofoldctl rekey --check`")]
        }
        guard let left = report.notUnderSealingKey, left == 0 else {
            return [.warning("key.rotation", subject: subject,
                             "a key rotation is under way: \(report.notUnderSealingKey ?? 0) secrets are not under the sealing key yet (previous keys: \(previous.joined(separator: ", ")))",
                             fix: "once every daemon seals with key \(sealing): `twofoldctl rekey`")]
        }
        return [.warning("key.rotation", subject: subject,
                         "rotation finished: every secret is under key \(sealing), but previous keys \(previous.joined(separator: ", ")) are still configured",
                         fix: "remove previous keys: take them out of previous_key_files (and the twofold.previous-key credentials) on every daemon, restart each, then destroy them")]
    }
}
