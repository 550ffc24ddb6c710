import Foundation
import Testing
import TwofoldTestSupport
import TwofoldProtocol

/// What `twofoldctl enroll` printed in human mode.
struct EnrollTranscript {
    var uri: String
    var key: String
    var recoveryCodes: [String]

    static func offer(in stdout: String) throws -> (uri: String, key: String) {
        var uri: String?, key: String?
        for line in stdout.split(separator: "\n") {
            if line.hasPrefix("URI:") { uri = line.dropFirst(4).trimmingCharacters(in: .whitespaces) }
            if line.hasPrefix("Key:") { key = line.dropFirst(4).trimmingCharacters(in: .whitespaces) }
        }
        guard let uri, let key else { throw HarnessError("no URI/Key lines in:\n\(stdout)") }
        return (uri, key)
    }

    static func recoveryCodes(in stdout: String) -> [String] {
        stdout.split(separator: "\n").compactMap { line in
            guard let match = line.wholeMatch(of: /\s+\d+\. (\S+)/) else { return nil }
            return String(match.1)
        }
    }

    static func hasOffer(_ stdout: String) -> Bool { stdout.contains("\nURI:") && stdout.hasSuffix("\n\n") }
    static func hasRecoveryCodes(_ stdout: String) -> Bool { stdout.contains(/once:\n\n( +\d+\. \S+\n)+\n/) }
    /// A further factor: no codes shown, the saved set stays valid.
    static func keptRecoveryCodes(_ stdout: String) -> Bool { stdout.contains("Your recovery codes stay valid") }
}

extension DaemonProcess {
    /// Runs `twofoldctl enroll` interactively to the end, as a person would: types `currentCode`
    /// first when given, reads the printed secret, types the app's code (two consecutive ones with
    /// `twoCodes`), and when recovery codes are shown (a first factor) checks that nothing is
    /// active before the confirmation and answers `confirm`. A further factor shows none and
    /// asks nothing more.
    func enroll(_ arguments: [String] = [], as runAs: TestUser? = nil, currentCode: String? = nil, twoCodes: Bool = false,
                confirm: String = "yes", user: String) throws -> (result: CLIResult, app: Authenticator, transcript: EnrollTranscript) {
        let initial = try status(user)
        let session = try interactive(["enroll"] + arguments, as: runAs)
        if let currentCode { session.send(currentCode) }
        let printed = try session.read(until: EnrollTranscript.hasOffer)
        let (uri, key) = try EnrollTranscript.offer(in: printed)
        let app = try Authenticator(base32: key.replacingOccurrences(of: " ", with: ""))
        let now = Date()
        session.send(app.code(at: now))
        if twoCodes { session.send(app.code(offset: 1, at: now)) }
        let shown = try session.read(until: { EnrollTranscript.hasRecoveryCodes($0) || EnrollTranscript.keptRecoveryCodes($0) })
        if EnrollTranscript.hasRecoveryCodes(shown) {
            // Shown, not yet confirmed: logins are unchanged.
            let before = try status(user)
            #expect(before.factors == initial.factors, "a factor was added before the recovery codes were confirmed")
            session.send(confirm)
        }
        let result = session.finish()
        let transcript = EnrollTranscript(uri: uri, key: key, recoveryCodes: EnrollTranscript.recoveryCodes(in: result.stdout))
        return (result, app, transcript)
    }
}
