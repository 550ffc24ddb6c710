import Foundation
import Logging
import Testing
import TwofoldCore
@testable import TwofoldDaemon
import TwofoldTestSupport

/// The relay's SSH key cache on an injected clock: served within its lifetime, not after, a
/// revocation (an empty answer) kept like any answer, nothing kept when the lifetime is 0.
@Suite("a relay's SSH key cache")
struct SSHKeyCacheTests {
    static func cache(_ directory: String, clock: ManualClock, lifetime: Int) -> SSHKeyCache {
        SSHKeyCache(path: directory + "/ssh-key-cache.json", clock: clock, logger: Logger(label: "test")) { lifetime }
    }

    @Test("within the lifetime the last answer is served, after it nothing; an empty answer is an answer")
    func lifetime() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = ManualClock(millis: 1_000_000)
        let cache = Self.cache(directory, clock: clock, lifetime: 3_600)
        cache.store("ann", lines: ["sk-ssh-ed25519@openssh.com AAAA a"])
        clock.advance(millis: 3_600_000)
        #expect(cache.lines("ann") == ["sk-ssh-ed25519@openssh.com AAAA a"])
        clock.advance(millis: 1)
        #expect(cache.lines("ann") == nil, "past the lifetime a revoked key must not keep working")
        cache.store("ann", lines: [])
        #expect(cache.lines("ann") == [])
        #expect(cache.lines("bob") == nil)
    }

    /// The time the file holds for `user`.
    static func fileTime(_ directory: String, _ user: String) throws -> Int64? {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/ssh-key-cache.json"))
        return try JSONDecoder().decode([String: SSHKeyCache.Entry].self, from: data)[user]?.fetchedMillis
    }

    @Test("the file is rewritten when the lines change or its time is a tenth of the lifetime old, not on every connection")
    func writes() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = ManualClock(millis: 1_000_000)
        let cache = Self.cache(directory, clock: clock, lifetime: 3_600)
        cache.store("ann", lines: ["a"])
        cache.flush()
        #expect(try Self.fileTime(directory, "ann") == 1_000_000)
        clock.advance(millis: 60_000)
        cache.store("ann", lines: ["a"])
        cache.flush()
        #expect(try Self.fileTime(directory, "ann") == 1_000_000, "the same lines a minute later: not written")
        #expect(cache.lines("ann") == ["a"])
        clock.advance(millis: 300_000)
        cache.store("ann", lines: ["a"])
        cache.flush()
        #expect(try Self.fileTime(directory, "ann") == 1_360_000, "six minutes after the last write: written")
        clock.advance(millis: 1)
        cache.store("ann", lines: [])
        cache.flush()
        #expect(try Self.fileTime(directory, "ann") == 1_360_001, "a revocation: written at once")
        // A relay restarted from the file serves what it holds.
        #expect(Self.cache(directory, clock: clock, lifetime: 3_600).lines("ann") == [])
    }

    @Test("a lifetime of 0 keeps and serves nothing")
    func off() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = Self.cache(directory, clock: ManualClock(millis: 5), lifetime: 0)
        cache.store("ann", lines: ["x"])
        #expect(cache.lines("ann") == nil)
    }
}
