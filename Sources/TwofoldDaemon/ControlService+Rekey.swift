import Logging
import TwofoldProtocol
import TwofoldStore

/// `twofoldctl rekey`: re-seals every sealed value under the sealing key, a step per request. A
/// step runs batches of `rekeyBatch` values, each its own short transaction (logins commit between
/// them), for about `rekeyStepSeconds` or `rekeyBatchesPerStep` batches, then answers with what it
/// did and where to go on. Nothing of a pass lives in the daemon: the store's values say what is
/// left, so a pass cut short (the CLI or the daemon killed) is finished by running it again.
extension ControlService {
    static let rekeyBatch = 100
    static let rekeyBatchesPerStep = 20
    static let rekeyStepSeconds = 1.0

    func rekey(check: Bool, cursor: String?, peer: PeerCredentials) async throws -> RekeyReport {
        let keyring = keys.keyring
        var report = RekeyReport(sealingKey: keyring.sealing.id.hex, previousKeys: keyring.previous.map(\.id.hex))
        if check {
            report.counts = try await sealedCounts()
            return report
        }
        if cursor == nil {
            logger.notice("rekey started", metadata: ["peer_uid": "\(peer.uid)", "sealing_key": "\(keyring.sealing.id)"])
            await audit("rekey", user: nil, peer: peer, outcome: "started",
                        reason: "re-sealing every secret not under key \(keyring.sealing.id) (\(keys.summary))")
        }
        var next = cursor
        let deadline = ContinuousClock.now + .seconds(Self.rekeyStepSeconds)
        var batches = 0
        repeat {
            let batch = try await store.resealSecrets(after: next, limit: Self.rekeyBatch)
            report.resealed += batch.resealed
            report.alreadyCurrent += batch.alreadyCurrent
            report.changed += batch.changed
            report.unreadable += batch.unreadable
            next = batch.next
            batches += 1
        } while next != nil && batches < Self.rekeyBatchesPerStep && ContinuousClock.now < deadline
        report.cursor = next
        logger.debug("rekey step", metadata: ["resealed": "\(report.resealed)", "already": "\(report.alreadyCurrent)",
                                              "changed": "\(report.changed)", "unreadable": "\(report.unreadable)"])
        if next == nil {
            report.counts = try await sealedCounts()
            await auditEnd(of: report, peer: peer)
        }
        return report
    }

    private func sealedCounts() async throws -> [SealedCount] {
        try await store.sealedValueCounts().map { SealedCount(keyID: $0.keyID?.hex, formatVersion: $0.formatVersion, count: $0.count) }
    }

    /// The pass's end, audited with where every sealed value now is.
    private func auditEnd(of report: RekeyReport, peer: PeerCredentials) async {
        let counts = report.counts ?? []
        let total = counts.reduce(0) { $0 + $1.count }
        let left = report.notUnderSealingKey ?? 0
        let others = counts.filter { $0.keyID != report.sealingKey }
            .map { "\($0.count) under \($0.keyID.map { "key \($0)" } ?? "format \($0.formatVersion) (no key id)")" }
        let reason = left == 0
            ? "every sealed secret (\(total)) is under key \(report.sealingKey)"
            : "\(total - left) sealed secrets under key \(report.sealingKey); still " + others.joined(separator: ", ")
        logger.notice("rekey pass finished", metadata: ["sealing_key": "\(report.sealingKey)", "left": "\(left)", "total": "\(total)"])
        await audit("rekey", user: nil, peer: peer, outcome: left == 0 ? "success" : "incomplete", reason: reason)
    }
}
