import Foundation
import Testing
import TwofoldTestSupport
import TwofoldCore
import TwofoldCrypto
@testable import TwofoldSQLite
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

/// A pipe whose ends are close-on-exec (a child gets only the end it is handed with dup2).
private func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw ChildProcessError("pipe: \(String(cString: strerror(errno)))") }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}

/// Reads `fd` until a newline or EOF.
private func readLine(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 256)
    while !bytes.contains(UInt8(ascii: "\n")) {
        let n = read(fd, &chunk, chunk.count)
        if n > 0 { bytes += chunk[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break  // EOF: the probe exited without a line
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads `fd` to EOF.
private func readAll(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n > 0 { bytes += chunk[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Starts the probe, reads its stdout until a full line, SIGKILLs it at once and reaps it.
/// Returns the line, its exit status (137 = SIGKILL) and its stderr. Blocking work runs off the cooperative pool.
func runProbeAndKill(_ arguments: [String]) async throws -> (line: String, status: Int32, stderr: String) {
    let probe = try crashProbePath()
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                let out = try makePipe()
                let err = try makePipe()
                let child: ChildProcess
                do {
                    child = try ChildProcess([probe] + arguments, fds: [1: out.write, 2: err.write])
                } catch {
                    [out.read, out.write, err.read, err.write].forEach { _ = close($0) }
                    throw error
                }
                _ = close(out.write)
                _ = close(err.write)
                let line = readLine(out.read)
                kill(child.pid, SIGKILL)
                let status = child.wait()
                let errText = readAll(err.read)
                _ = close(out.read)
                _ = close(err.read)
                continuation.resume(returning: (line, status, errText))
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
                #expect(run.status == 128 + SIGKILL, "the probe exited by itself (\(run.status)) instead of waiting to be killed")

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
