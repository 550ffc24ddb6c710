import Testing
import TwofoldProtocol
@testable import TwofoldFuzz

/// Every seed and every regression input of the fuzz targets (fuzz/corpus, fuzz/regressions; docs/testing.md
/// "Fuzzing") through the same harness the fuzzer runs (Sources/TwofoldFuzz/Harness.swift), without the
/// sanitizers: each input must end in a value or a clean error and keep the harness's properties
/// (split-invariant decoding, re-encoding to the same message, canonical key payloads), never crash.
/// The frame decoder also gets the C targets' inputs: the daemon's side of real logins.
@Suite("Fuzz corpus and regressions replayed")
struct FuzzReplayTests {
    static let fuzz: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/fuzz"
    }()

    /// The directories each target replays: its own corpus and regressions first.
    static func directories(_ target: FuzzTarget) -> [String] {
        let own = ["corpus/\(target.rawValue)", "regressions/\(target.rawValue)"]
        let extra = target == .frame ? ["corpus/module", "corpus/wire", "regressions/module", "regressions/wire"] : []
        return (own + extra).map { fuzz + "/" + $0 }
    }

    @Test("each input decodes to a value or a clean error, with the harness's properties", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        var count = 0
        for directory in Self.directories(target) {
            // The corpus must be there (a lost or renamed directory would replay nothing); regressions may be empty.
            let files = FuzzInputs.files(at: directory) ?? []
            if directory.hasSuffix("corpus/\(target.rawValue)") {
                #expect(files.count >= 3, "\(directory): \(files.count) seeds")
            }
            for file in files {
                let bytes = try #require(FuzzInputs.read(file), "cannot read \(file)")
                count += 1
                if let broken = target.run(bytes) {
                    Issue.record("\(file): \(broken)")
                }
            }
        }
        #expect(count > 0)
    }

    /// The properties themselves, on inputs made to break them: a harness that cannot fail proves nothing.
    @Test("the harness's stream decoding: whole frames, then the error a too-long length gives, whatever the pieces")
    func harnessCatches() throws {
        // Two whole frames, then a length announcing more than the daemon takes: the same error whole or split.
        let info: [UInt8] = [0, 0, 0, 5, 1, 0x13, 0x10, 0, 0]
        #expect(FuzzTarget.frame.run(info + info + [0, 1, 0, 1]) == nil)
        let outcome = FrameFuzz.decode(info + info + [0, 1, 0, 1], maxFrame: 65_536, chunks: [3, 9, 10])
        #expect(outcome.outcome.messages == [.info(""), .info("")])
        #expect(outcome.outcome.error == .frameTooLarge(announced: 65_537, max: 65_536))
        let request: [UInt8] = [0x4B, 1, 2, 0, 0, 0x75, 0x30, 1, 0x61] + [UInt8](repeating: 7, count: 32) + [1, 0, 1, 9, 0]
        #expect(FuzzTarget.keystep.run(request) == nil)
        #expect((try? KeyRequest.decode(request + [0])) == nil)
    }
}
