import Foundation
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A small file system of its own for a daemon's database, to fill to the last byte: a size-limited
/// tmpfs, or an ext4 image on a loop device (real block allocation, a journal, and fsync that
/// reaches a block device). Both need root (mount). Unmounted by `unmount()`, which the test calls
/// once the daemon is gone (ARC may end a value before its scope does, so no deinit does it).
final class SmallFileSystem: @unchecked Sendable {
    enum Kind: String, CustomStringConvertible, CaseIterable, Sendable {
        /// `mount -t tmpfs -o size=...`: always available to root; pages are allocated at write().
        case tmpfs
        /// `mkfs.ext4` on an image, `mount -o loop`: where loop devices are available.
        case ext4
        var description: String { rawValue }
    }

    let kind: Kind
    let directory: String
    let mountPoint: String
    private var mounted = false
    private var fillerPath: String { mountPoint + "/filler" }

    /// Whether this machine lets root mount an ext4 image on a loop device (a container may not).
    static let loopDevicesWork: Bool = {
        guard let fs = try? SmallFileSystem(.ext4, kibibytes: 1024) else { return false }
        fs.unmount()
        return true
    }()

    init(_ kind: Kind, kibibytes: Int) throws {
        self.kind = kind
        directory = try makeTemporaryDirectory("tfdisk")
        mountPoint = directory + "/mnt"
        guard mkdir(mountPoint, 0o755) == 0 else { throw HarnessError("mkdir \(mountPoint): \(String(cString: strerror(errno)))") }
        let argv: [String]
        switch kind {
        case .tmpfs:
            argv = ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=\(kibibytes)k,mode=0755", "tmpfs", mountPoint]
        case .ext4:
            let image = directory + "/disk.img"
            guard let made = try? ChildProcess.run(["/usr/bin/truncate", "-s", "\(kibibytes)K", image]), made.status == 0 else {
                throw HarnessError("cannot make \(image)")
            }
            // No blocks reserved for root (the daemon and the filler both run as root), no lazy init.
            let mkfs = try ChildProcess.run(["/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0", image])
            guard mkfs.status == 0 else { throw HarnessError("mkfs.ext4 failed: \(mkfs.output)") }
            argv = ["/usr/bin/mount", "-o", "loop", image, mountPoint]
        }
        let mount = try ChildProcess.run(argv)
        guard mount.status == 0 else {
            try? FileManager.default.removeItem(atPath: directory)
            throw HarnessError("\(argv.joined(separator: " ")) failed (\(mount.status)): \(mount.output)")
        }
        mounted = true
    }

    /// Bytes free for root now (statvfs f_bfree).
    var freeBytes: Int {
        var st = statvfs()
        guard statvfs(mountPoint, &st) == 0 else { return -1 }
        return Int(st.f_bfree) * Int(st.f_frsize)
    }

    /// Writes a filler file until the file system refuses with ENOSPC, in ever smaller pieces down
    /// to one byte, syncs it, and goes on until a round after a sync takes nothing more (ext4 gives
    /// back what it had reserved for delayed allocation once the blocks are written); returns how
    /// many bytes it took.
    @discardableResult
    func fill() throws -> Int {
        let fd = open(fillerPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HarnessError("open filler: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var total = 0
        let zeros = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<20 {
            var round = 0
            for piece in [65_536, 4096, 512, 1] {
                while true {
                    let n = zeros.withUnsafeBytes { write(fd, $0.baseAddress, piece) }
                    if n > 0 { round += n; continue }
                    guard n < 0, errno == ENOSPC else { throw HarnessError("filler write: \(String(cString: strerror(errno)))") }
                    break
                }
            }
            if fsync(fd) != 0 && errno != ENOSPC { throw HarnessError("fsync filler: \(String(cString: strerror(errno)))") }
            total += round
            if round == 0 { return total }
        }
        throw HarnessError("the file system kept taking bytes after 20 rounds of filling")
    }

    /// Deletes the filler: the space is back.
    func free() throws {
        guard unlink(fillerPath) == 0 else { throw HarnessError("unlink filler: \(String(cString: strerror(errno)))") }
        if kind == .ext4 { sync() }
    }

    func unmount() {
        guard mounted else { return }
        mounted = false
        if (try? ChildProcess.run(["/usr/bin/umount", mountPoint]))?.status != 0 {
            _ = try? ChildProcess.run(["/usr/bin/umount", "-l", mountPoint])
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// stallfs (Tests/fuse/stallfs.c, never installed): a FUSE passthrough of a backing directory whose
/// fsync and fdatasync can be held and released, the stand-in for a stalled disk where the device
/// mapper (dm-delay) is unavailable. Commands go through its control file and are synchronous: when
/// `stall()` returns, the next sync waits; `waitHeld` blocks in the file system until a sync is held.
final class StallFS: @unchecked Sendable {
    static let sourceDirectory = TestPaths.root + "/Tests/fuse"
    static let binary = sourceDirectory + "/stallfs"

    let directory: String
    let backing: String
    let mountPoint: String
    private let process: ChildProcess
    private let output: Int32
    private var mounted = true
    private var control: String { mountPoint + "/.stallfs" }

    /// Builds stallfs (once, under a lock: several test processes may ask), mounts it over
    /// `backing` (an existing directory; by default a fresh one) and waits for its "ready" line
    /// (printed when the kernel's INIT arrives).
    init(backing existing: String? = nil) throws {
        if let failure = Self.buildFailure { throw HarnessError(failure) }
        directory = try makeTemporaryDirectory("tfstall")
        backing = existing ?? directory + "/backing"
        mountPoint = directory + "/mnt"
        for path in (existing == nil ? [backing] : []) + [mountPoint] where mkdir(path, 0o755) != 0 {
            throw HarnessError("mkdir \(path): \(String(cString: strerror(errno)))")
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        process = try ChildProcess([Self.binary, backing, mountPoint], fds: [1: fds[1], 2: fds[1]])
        close(fds[1])
        output = fds[0]
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = Date().addingTimeInterval(20)
        while !text.split(separator: "\n").contains("ready") {
            var pfd = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let left = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard Date() < deadline, poll(&pfd, 1, left) > 0 else { break }
            let n = read(output, &buffer, buffer.count)
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        guard text.split(separator: "\n").contains("ready") else {
            process.signal(SIGKILL)
            process.wait()
            close(output)
            throw HarnessError("stallfs did not mount \(mountPoint): \(text)")
        }
    }

    private static let buildFailure: String? = {
        do {
            let (status, output) = try ChildProcess.run(["/usr/bin/flock", "/tmp/twofold-stallfs-build.lock", "/usr/bin/make", "-s", "-C", sourceDirectory])
            return status == 0 ? nil : "make -C Tests/fuse failed (\(status)): \(output) (scripts/install-deps.sh installs libfuse3-dev and fuse3)"
        } catch {
            return "cannot run make: \(error)"
        }
    }()

    private func command(_ text: String) throws {
        let fd = open(control, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("open \(control): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw HarnessError("stallfs '\(text)': \(String(cString: strerror(errno)))") }
    }

    /// From now on every fsync and fdatasync (but of SQLite's -shm) waits.
    func stall() throws { try command("stall") }

    /// Every held sync goes on; none waits any more.
    func release() throws { try command("release") }

    /// Returns once at least `count` syncs are being held (of threads named `thread` only, as in
    /// /proc/TID/comm, when given); throws after `timeoutSeconds`.
    func waitHeld(_ count: Int = 1, thread: String? = nil, timeoutSeconds: Double = 20) throws {
        try command("wait \(count) \(Int(timeoutSeconds * 1000))" + (thread.map { " " + $0 } ?? ""))
    }

    struct Status: Equatable, CustomStringConvertible {
        var stalled: Bool
        var held: Int
        /// Syncs that reached the backing files since the mount.
        var syncs: Int
        var released: Int
        /// Each held sync: the calling thread's name and the file.
        var holders: [String]
        var description: String { "stalled=\(stalled) held=\(held) syncs=\(syncs) released=\(released) holders=\(holders)" }
    }

    func status() throws -> Status {
        let text = try String(contentsOfFile: control, encoding: .utf8)
        let lines = text.split(separator: "\n")
        var fields: [String: Int] = [:]
        for pair in (lines.first ?? "").split(separator: " ") {
            let kv = pair.split(separator: "=")
            if kv.count == 2, let value = Int(kv[1]) { fields[String(kv[0])] = value }
        }
        guard let stalled = fields["stalled"], let held = fields["held"], let syncs = fields["syncs"], let released = fields["released"] else {
            throw HarnessError("stallfs status: \(text)")
        }
        let holders = lines.dropFirst().filter { $0.hasPrefix("holder ") }.map { String($0.dropFirst(7)) }
        return Status(stalled: stalled != 0, held: held, syncs: syncs, released: released, holders: holders)
    }

    /// Releases every sync, unmounts and waits for stallfs to exit.
    func unmount() {
        guard mounted else { return }
        mounted = false
        try? release()
        if (try? ChildProcess.run(["/usr/bin/umount", mountPoint]))?.status != 0 {
            _ = try? ChildProcess.run(["/usr/bin/umount", "-l", mountPoint])
        }
        process.signal(SIGTERM)
        process.wait()
        close(output)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The sqlite3 shell on a database file (another process than the daemon, as an admin would run it).
enum SQLiteShell {
    /// Runs `sql` with a 5 s busy timeout (the daemon's own connections are open meanwhile).
    static func run(_ database: String, _ sql: String) throws -> String {
        let (status, output) = try ChildProcess.run(["/usr/bin/sqlite3", "-bail", "-cmd", ".timeout 5000", database, sql])
        guard status == 0 else { throw HarnessError("sqlite3 \(database) '\(sql)' failed (\(status)): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func integrityCheck(_ database: String) throws -> String {
        try run(database, "PRAGMA integrity_check")
    }
}
