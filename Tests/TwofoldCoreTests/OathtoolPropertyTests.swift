import Foundation
import Testing
import TwofoldCore
import TwofoldCrypto
import TwofoldTestSupport

/// Cross-checks our HOTP/TOTP against the reference `oathtool` (OATH Toolkit) on random cases.
///
/// oathtool 2.6 reads KEY from standard input when KEY is "-", so the throwaway secrets never
/// appear in argv. `--now=@T` takes a Unix time, `--time-step-size=Ps` a period in seconds.
/// Its HOTP mode is HMAC-SHA1 only, so HOTP is compared with SHA-1; TOTP covers all three hashes.
@Suite("oathtool cross-check")
struct OathtoolPropertyTests {
    static let candidates = ["/usr/bin/oathtool", "/usr/local/bin/oathtool", "/bin/oathtool"]

    static func oathtoolPath() -> String? {
        var paths = candidates
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            paths += path.split(separator: ":").map { "\($0)/oathtool" }
        }
        return paths.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs oathtool with the hex key on stdin (never in argv); returns the trimmed output
    /// (stdout and stderr together: on success oathtool prints only the code).
    static func run(_ tool: String, _ arguments: [String], keyHex: String) throws -> (status: Int32, output: String, error: String) {
        let (status, output) = try ChildProcess.run([tool] + arguments + ["-"], input: keyHex + "\n")
        let trimmed = output.trimmingCharacters(in: .whitespacesAndNewlines)
        return (status, trimmed, status == 0 ? "" : trimmed)
    }

    @Test("oathtool is installed")
    func installed() {
        #expect(Self.oathtoolPath() != nil, "oathtool not found: install oath-toolkit (apt-get install oathtool)")
    }

    @Test("TOTP and HOTP agree with oathtool on 60 random cases")
    func agreesWithOathtool() throws {
        let tool = try #require(Self.oathtoolPath(), "oathtool not found: install oath-toolkit (apt-get install oathtool)")
        var rng = SeededGenerator()
        for i in 0..<60 {
            let secretBytes = rng.bytes(Int.random(in: 10...64, using: &rng))
            let secret = SecretBytes(secretBytes)
            let algorithm = HashAlgorithm.allCases.randomElement(using: &rng)!
            let digits = Int.random(in: 6...8, using: &rng)
            let period = [30, 60, Int.random(in: 10...120, using: &rng)].randomElement(using: &rng)!
            let time = Int64.random(in: 0...8_000_000_000, using: &rng)
            let counter = Bool.random(using: &rng) ? UInt64.random(in: 0...1_000_000, using: &rng) : UInt64.random(in: .min ... .max, using: &rng)
            let context: Comment = "case \(i), seed \(rng.seed): \(secretBytes.count)-byte secret, \(algorithm.rawValue), \(digits) digits, period \(period), t=\(time), counter=\(counter)"

            let parameters = OTPParameters(method: .totp, algorithm: algorithm, digits: digits, period: period)
            let totp = try Self.run(tool, ["--totp=\(algorithm.rawValue)", "--digits=\(digits)", "--time-step-size=\(period)s", "--now=@\(time)"], keyHex: hex(secretBytes))
            #expect(totp.status == 0, "oathtool failed: \(totp.error); \(context)")
            #expect(OneTimeCode.totp(secret: secret, unixTime: time, parameters: parameters) == totp.output, context)

            let hotp = try Self.run(tool, ["--hotp", "--digits=\(digits)", "--counter=\(counter)"], keyHex: hex(secretBytes))
            #expect(hotp.status == 0, "oathtool failed: \(hotp.error); \(context)")
            #expect(OneTimeCode.hotp(secret: secret, counter: counter, digits: digits, algorithm: .sha1) == hotp.output, context)
        }
    }
}
