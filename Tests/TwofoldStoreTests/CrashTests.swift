import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldStore

#if canImport(Glibc)
import Glibc
#endif

/// The built `twofold-crashprobe`: next to the running test binary, else in the package's `.build/debug`.
func crashProbePath() throws -> String {
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("twofold-crashprobe").path)
    }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(packageRoot.appendingPathComponent(".build/debug/twofold-crashprobe").path)
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw StoreError.database("twofold-crashprobe not built (looked at \(candidates)); run swift build --product twofold-crashprobe")
    }
    return found
}

/// Starts the probe, reads its stdout until a full line, SIGKILLs it at once and reaps it.
/// Returns the line and whether it died by SIGKILL. Blocking work runs off the cooperative pool.
func runProbeAndKill(_ arguments: [String]) async throws -> (line: String, killed: Bool, stderr: String) {
    let probe = try crashProbePath()
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: probe)
                process.arguments = arguments
                let out = Pipe()
                let err = Pipe()
                process.standardOutput = out
                process.standardError = err
                try process.run()
                var buffer = Data()
                while !buffer.contains(UInt8(ascii: "\n")) {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }  // EOF: the probe exited without a line
                    buffer.append(chunk)
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let killed = process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
                let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                continuation.resume(returning: (String(decoding: buffer, as: UTF8.self), killed, errText))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

@Suite struct CrashTests {
    @Test func anAcceptedStepSurvivesSIGKILLRightAfterCommitReturns() async throws {
        try await withTempDir { dir in
            let keyFile = dir + "/key"
            let keys = try SealingKeys.loadOrCreate(keyFile: keyFile)
            let db = dir + "/twofold.db"
            let setup = try SQLiteStore(path: db, keys: keys)
            try await enroll(setup, "alice")
            try await setup.close()

            for round in 0..<5 {
                let step = Int64(1_000 + 10 * round)
                let run = try await runProbeAndKill([db, keyFile, "alice", String(step)])
                #expect(run.line == "APPLIED\n", "probe said \(run.line.debugDescription); stderr: \(run.stderr)")
                #expect(run.killed)

                let store = try SQLiteStore(path: db, keys: keys)
                #expect(try await store.user("alice")?.verify.lastStep == step)
                #expect(try await store.commit([accept("alice", step: step)]) == [.conflict])
                #expect(try await store.commit([accept("alice", step: step + 1)]) == [.applied])
                try await store.close()
            }

            // A replay through the probe itself is refused too.
            let replay = try await runProbeAndKill([db, keyFile, "alice", "1041"])
            #expect(replay.line == "CONFLICT\n", "stderr: \(replay.stderr)")
        }
    }
}
