import Foundation
import Testing
import TwofoldClient
import TwofoldCore
import TwofoldProtocol
import TwofoldTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 17, part 3: the disk under the daemon's database full, and stalled. A real twofoldd over
/// its socket, its SQLite database (and WAL) on a file system of the test's own, the real module
/// through libpam for the verdicts' PAM codes. What the hardening rules promise (README, "The
/// database down"; docs/threat_model.md): UNAVAILABLE before a prompt (the module's failmode
/// decides), a failure after one (PAM_AUTH_ERR whatever failmode), never SUCCESS for a login whose
/// commit is not durable, and no wait past the client's deadline.
///
/// The full disk is a size-limited tmpfs, and ext4 on a loop device where loop devices work. The
/// stalled disk is stallfs (Tests/fuse/stallfs.c), a FUSE passthrough whose syncs are held: the
/// device mapper's dm-delay is not available in the containers the tests run in, so this is a
/// stand-in (a write lands in the page cache, an fsync waits for a device that does not answer).
@Suite("faults: the database's disk full, and stalled", .serialized)
struct DiskFaultTests {
    static let prompt = Message.promptEchoOff("Verification code: ")

    static func audit(_ daemon: DaemonProcess, user: String) throws -> [AuditEntry] {
        guard case .audit(let entries) = try daemon.control(.audit(user: user, sinceMillis: nil, outcome: nil, limit: 1000)) else {
            throw HarnessError("audit request failed")
        }
        return entries
    }

    static func milliseconds(_ from: Date, _ to: Date) -> Int { Int((to.timeIntervalSince(from) * 1000).rounded()) }

    // MARK: - Disk full

    @Test("disk full (tmpfs): a login after its prompt fails, one that must write first is UNAVAILABLE, control requests say the disk is full; nothing committed is lost; freed, everything works again without a restart")
    func diskFullOnTmpfs() throws {
        try diskFull(.tmpfs)
    }

    @Test("disk full (ext4 on a loop device): the same", .enabled(if: SmallFileSystem.loopDevicesWork, "no loop devices here: the tmpfs case runs alone"))
    func diskFullOnExt4() throws {
        try diskFull(.ext4)
    }

    private func diskFull(_ kind: SmallFileSystem.Kind) throws {
        try PAMBuild.require()
        let fs = try SmallFileSystem(kind, kibibytes: 4096)
        defer { fs.unmount() }
        let database = fs.mountPoint + "/twofold.sqlite"
        // Everyone required; a user without a factor gets a grace period, which the store must
        // write down at the first login (the start of that login needs a write).
        let daemon = try DaemonProcess(extraConfig: """
            database = \(database)
            max_failures = 3
            require = everyone
            unenrolled = grace
            grace_days = 7
            """)
        defer { daemon.kill() }   // before the unmount (defers run last first)
        let pid = try #require(daemon.process?.pid)
        let closed = try PAMConfig(socket: daemon.socketPath)
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open", thenPermit: true)

        // Committed before the disk fills: three users, a login, a lock.
        let ann = try daemon.provision("ann"), bea = try daemon.provision("bea"), lou = try daemon.provision("lou")
        let annCode = ann.code(), beaCode = bea.code(), beaNext = bea.code(offset: 1)
        #expect(try closed.authenticate("bea", answers: [beaCode]).result == "PAM_SUCCESS")
        for _ in 0..<3 { _ = try daemon.login("lou", answer: lou.wrongCode()) }
        #expect(try daemon.status("lou").lockedUntilMillis != nil)
        // gus's grace period began at his first login, and (moved back to 1970) is over: refused.
        #expect(try daemon.login("gus", answer: "000000").verdict == .ignore)
        _ = try SQLiteShell.run(database, "UPDATE users SET first_required = 1 WHERE name = 'gus'")
        #expect(try daemon.login("gus", answer: "000000").verdict == .denied)

        // SQLite writes over the WAL's old frames once they are checkpointed, so on a full disk
        // commits go on succeeding until the WAL has to grow (correct, but how many is up to the
        // checkpointer's timing). A TRUNCATE checkpoint from another connection first: the very
        // first commit after the fill needs new space.
        #expect(try SQLiteShell.run(database, "PRAGMA wal_checkpoint(TRUNCATE)") == "0|0|0")
        let filled = try fs.fill()
        // (ext4 keeps a few clusters for itself that statvfs still counts as free; the filler's
        // last round, after a sync, could not write a single byte.)
        if kind == .tmpfs { #expect(fs.freeBytes == 0) }
        print("disk full (\(kind)): filler took \(filled) bytes, \(fs.freeBytes) counted free; database \(Self.size(database)) bytes, WAL \(Self.size(database + "-wal")) bytes")

        // An enrolled user with the right code: the prompt (reads need no space), then a failure,
        // never SUCCESS: the accept cannot be committed. Through the module a failure after the
        // prompt is PAM_AUTH_ERR, failmode=open and pam_permit or not.
        let annDialog = try daemon.login("ann", answer: annCode)
        #expect(annDialog.transcript.first == Self.prompt)
        #expect(annDialog.verdict == .unavailable, "\(annDialog)")
        #expect(try open.authenticate("ann", answers: [annCode]).result == "PAM_AUTH_ERR")
        #expect(try closed.authenticate("ann", answers: [annCode]).result == "PAM_AUTH_ERR")
        // A wrong code cannot be counted either: a failure too, not a pass.
        #expect(try open.authenticate("bea", answers: [bea.wrongCode()]).result == "PAM_AUTH_ERR")
        // A login that must write before it can ask anything (the grace period's start):
        // UNAVAILABLE as the first message, which the module maps to "unavailable" (fails closed).
        let gilDialog = try daemon.login("gil", answer: "000000")
        #expect(gilDialog.prompts.isEmpty && gilDialog.verdict == .unavailable, "\(gilDialog)")
        let gil = try closed.authenticate("gil", answers: [])
        #expect(gil.result == "PAM_AUTHINFO_UNAVAIL", "\(gil.lines)")
        // A decision that needs no write is still given (its audit record is logged as not recorded),
        // not UNAVAILABLE, which failmode=open would let through: a locked user, a grace period
        // that is over (when it began is stored already).
        #expect(try daemon.login("lou", answer: "000000").verdict == .locked)
        #expect(try open.authenticate("lou", answers: []).result == "PAM_MAXTRIES")
        let gusDialog = try daemon.login("gus", answer: "000000")
        #expect(gusDialog.verdict == .denied && gusDialog.prompts.isEmpty, "\(gusDialog)")
        let gus = try open.authenticate("gus", answers: [])
        #expect(gus.result == "PAM_AUTH_ERR", "\(gus.lines)")

        // Control requests: an error that names the cause; reads still answer.
        let newcomer = try TestAuthenticator.random()
        let imported = try daemon.control(.importEnrollment(user: "newcomer", source: .uri(newcomer.uri(account: "newcomer"))))
        #expect(Self.saysDiskFull(imported), "\(imported)")
        let unlocked = try daemon.control(.unlock(user: "lou"))
        #expect(Self.saysDiskFull(unlocked), "\(unlocked)")
        let ctl = try ChildProcess.run([TestPaths.twofoldctl, "user", "unlock", "lou", "--socket", daemon.socketPath])
        #expect(ctl.status != 0 && ctl.output.contains("disk is full"), "twofoldctl user unlock: \(ctl)")
        #expect(try daemon.status("ann").enrollment == "active")

        // Alive, the same process; the log says why; what was committed is intact.
        #expect(daemon.process?.isRunning == true && daemon.process?.pid == pid)
        let log = daemon.log
        #expect(log.contains("database or disk is full"))
        let annUnrecorded = log.split(separator: "\n").filter { $0.contains("user=ann") && $0.contains("recorded=no") }
        #expect(!annUnrecorded.isEmpty, "the refused attempt is in the journal as not recorded")
        #expect(try SQLiteShell.integrityCheck(database) == "ok")
        #expect(try daemon.status("lou").lockedUntilMillis != nil)

        // Space back: no restart, everything works, and the code refused while full was not used.
        try fs.free()
        #expect(try closed.authenticate("ann", answers: [annCode]).result == "PAM_SUCCESS")
        #expect(try closed.authenticate("bea", answers: [beaCode]).result == "PAM_AUTH_ERR", "the login before the fill is still on record: a replay")
        #expect(try daemon.status("bea").failures == 1, "the wrong code while full was not counted; the replay now is")
        #expect(try closed.authenticate("bea", answers: [beaNext]).result == "PAM_SUCCESS")
        let gilNow = try daemon.login("gil", answer: "000000")
        #expect(gilNow.verdict == .ignore && gilNow.prompts.isEmpty, "\(gilNow)")
        #expect(try daemon.control(.importEnrollment(user: "newcomer", source: .uri(newcomer.uri(account: "newcomer")))) == .imported(recoveryCodes: 0))
        #expect(try daemon.control(.unlock(user: "lou")) == .ok)
        #expect(try closed.authenticate("lou", answers: [lou.code()]).result == "PAM_SUCCESS")
        #expect(daemon.process?.isRunning == true && daemon.process?.pid == pid)
        let annRecords = try Self.audit(daemon, user: "ann").filter { $0.action == "verify" }.map(\.outcome)
        #expect(annRecords == ["success"], "nothing of the full disk's attempts was stored, the later success was: \(annRecords)")

        // Stopped cleanly, the file is whole.
        #expect(daemon.stop() == 0)
        #expect(try SQLiteShell.integrityCheck(database) == "ok")
    }

    static func saysDiskFull(_ response: ControlResponse) -> Bool {
        guard case .error(.unavailable, let message) = response else { return false }
        return message.contains("database or disk is full")
    }

    static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    // MARK: - Disk stalled

    @Test("stalled disk (stallfs): an answer whose commit waits at fsync gets UNAVAILABLE within the client's deadline, never SUCCESS; released, the commit lands, the code is used and audited as abandoned, and logins work again without a restart")
    func stalledCommit() throws {
        try PAMBuild.require()
        let stall = try StallFS()
        defer { stall.unmount() }
        let daemon = try DaemonProcess(extraConfig: "database = \(stall.mountPoint)/twofold.sqlite")
        // Released first: a process with a thread in a held sync cannot finish dying.
        defer { try? stall.release(); daemon.kill() }
        let pid = try #require(daemon.process?.pid)
        let sam = try daemon.provision("sam"), pat = try daemon.provision("pat"), sol = try daemon.provision("sol")
        let samCode = sam.code(), samNext = sam.code(offset: 1), solCode = sol.code()
        // Through the mount, syncs and all.
        #expect(try daemon.login("pat", answer: pat.code()).verdict == .success)
        #expect(try stall.status().syncs > 0)

        try stall.stall()
        let syncsAtStall = try stall.status().syncs
        let clientWaitMillis: UInt32 = 3000
        let connection = try daemon.connect(timeout: 20)
        defer { connection.close() }
        try connection.send(.authStart(AuthStart(user: "sam", service: "sshd", rhost: "192.0.2.7", tty: "ssh", deadlineMillis: clientWaitMillis)))
        #expect(try connection.receive() == Self.prompt, "reading needs no sync")
        let answered = Date()
        try connection.send(.answer(samCode))
        // The accept's commit is at the disk, waiting (the group-commit thread's sync is held).
        try stall.waitHeld(1, thread: "twofold-commit", timeoutSeconds: 10)
        let heldAt = Date()
        let verdict = try connection.receive()
        let verdictAt = Date()
        let during = try stall.status()
        // Nothing synced since the stall began: whatever the answer committed is not durable, and
        // the verdict came meanwhile. It must not be SUCCESS.
        #expect(during.syncs == syncsAtStall && during.holders.contains { $0.hasPrefix("twofold-commit ") }, "\(during)")
        #expect(verdict == .verdict(.unavailable, reason: "no decision within the client's deadline"), "\(verdict)")
        let elapsed = Self.milliseconds(answered, verdictAt)
        print("stalled disk: commit held \(Self.milliseconds(answered, heldAt)) ms after the answer; verdict \(elapsed) ms after it "
              + "(client waits \(clientWaitMillis) ms; the daemon answers 500 ms before that, on a 250 ms sweep)")
        #expect(elapsed < Int(clientWaitMillis) + 2000, "answered within the client's wait (+2 s slack for a loaded machine): \(elapsed) ms")

        // Through the module, failmode=open and pam_permit: a failure, not a pass.
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open timeout=2", thenPermit: true)
        let started = Date()
        let solOutcome = try open.authenticate("sol", answers: [solCode])
        print("stalled disk: module (timeout=2) got \(solOutcome.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(solOutcome.result == "PAM_AUTH_ERR", "\(solOutcome.lines)")
        #expect(try stall.status().syncs == syncsAtStall)

        // The disk comes back: the held commit lands. The code it accepted is used up (now a
        // replay), no login happened (audited as abandoned), and the daemon goes on, same process.
        try stall.release()
        #expect(try daemon.login("sam", answer: samCode).verdict == .failure)
        let deadline = Date().addingTimeInterval(15)
        var samRecords: [AuditEntry] = []
        repeat {
            samRecords = try Self.audit(daemon, user: "sam").filter { $0.action == "verify" }
        } while !samRecords.contains(where: { $0.outcome == "abandoned" }) && Date() < deadline
        let outcomes = samRecords.map { "\($0.outcome): \($0.reason ?? "")" }
        #expect(outcomes.contains("abandoned: code accepted after the client's deadline had passed; no login"), "\(outcomes)")
        #expect(try daemon.login("sam", answer: samNext).verdict == .success)
        #expect(try daemon.login("sol", answer: solCode).verdict == .failure, "sol's code landed too: used")
        #expect(daemon.process?.isRunning == true && daemon.process?.pid == pid)
        #expect(daemon.log.contains("no decision within the client's deadline"))
        #expect(daemon.stop() == 0)
        #expect(try SQLiteShell.integrityCheck(stall.mountPoint + "/twofold.sqlite") == "ok")
    }

    @Test("stalled disk (stallfs): a decision that needs no write (locked, required but not enrolled by an override or by a group, a peer refused) is answered within the client's deadline, not held for its audit record until the module gives up and failmode=open lets the user in")
    func stalledAuditOfADecision() throws {
        try PAMBuild.require()
        let member = try TestUser.groupMember
        let stall = try StallFS()
        defer { stall.unmount() }
        let daemon = try DaemonProcess(extraConfig: """
            database = \(stall.mountPoint)/twofold.sqlite
            max_failures = 2
            require = groups
            required_groups = twofold-req
            unenrolled = deny
            """)
        defer { try? stall.release(); daemon.kill() }
        #expect(try daemon.control(.setRequirement(user: "dan", requirement: .required)) == .ok)
        let lou = try daemon.provision("lou")
        for _ in 0..<2 { _ = try daemon.login("lou", answer: lou.wrongCode()) }
        #expect(try daemon.status("lou").lockedUntilMillis != nil)

        let lockedBefore = try Self.audit(daemon, user: "lou").filter { $0.outcome == "locked" }.count

        try stall.stall()
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open timeout=2", thenPermit: true)
        var started = Date()
        let locked = try open.authenticate("lou", answers: [])
        print("stalled disk: locked user through the module (timeout=2): \(locked.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(locked.result == "PAM_MAXTRIES", "\(locked.lines)")
        started = Date()
        let denied = try open.authenticate("dan", answers: [])
        print("stalled disk: required by an override, not enrolled: \(denied.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(denied.result == "PAM_AUTH_ERR", "\(denied.lines)")
        // Required through a group (its members looked up through NSS first).
        started = Date()
        let byGroup = try open.authenticate(member.name, answers: [])
        print("stalled disk: required by a group, not enrolled: \(byGroup.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(byGroup.result == "PAM_AUTH_ERR", "\(byGroup.lines)")
        // A screen locker's peer asking about another user: refused (DENIED), not "unavailable".
        started = Date()
        let refused = try open.authenticate("lou", answers: [], as: try TestUser.user)
        print("stalled disk: a peer refused: \(refused.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(refused.result == "PAM_AUTH_ERR", "\(refused.lines)")
        // The protocol's view, timed: the decision, within the client's wait.
        let clientWaitMillis: UInt32 = 2000
        started = Date()
        let outcome = try LoginDialog.run(socketPath: daemon.socketPath,
                                          start: AuthStart(user: "lou", service: "sshd", deadlineMillis: clientWaitMillis),
                                          timeoutSeconds: 10) { _, _ in "000000" }
        let elapsed = Self.milliseconds(started, Date())
        print("stalled disk: LOCKED verdict after \(elapsed) ms (client waits \(clientWaitMillis) ms)")
        #expect(outcome.verdict == .locked && outcome.prompts.isEmpty, "\(outcome)")
        #expect(elapsed < Int(clientWaitMillis) + 2000)
        let during = try stall.status()
        #expect(during.stalled && during.held > 0, "the audit commits were held all along: \(during)")

        // Released: the audit records land after all.
        try stall.release()
        let deadline = Date().addingTimeInterval(15)
        var lockedRecords = 0
        repeat {
            lockedRecords = try Self.audit(daemon, user: "lou").filter { $0.outcome == "locked" }.count
        } while lockedRecords < lockedBefore + 2 && Date() < deadline
        #expect(lockedRecords == lockedBefore + 2, "two LOCKED answers while stalled, each audited once the disk came back")
        #expect(daemon.log.contains("not stored within half the client's wait"))
    }

    @Test("stalled disk (stallfs): a user whose grace period is over is refused within the client's deadline, not left to the module's timeout")
    func stalledGraceOver() throws {
        try PAMBuild.require()
        let stall = try StallFS()
        defer { stall.unmount() }
        let database = stall.mountPoint + "/twofold.sqlite"
        let daemon = try DaemonProcess(extraConfig: """
            database = \(database)
            require = everyone
            unenrolled = grace
            grace_days = 7
            """)
        defer { try? stall.release(); daemon.kill() }
        #expect(try daemon.login("gus", answer: "000000").verdict == .ignore)
        _ = try SQLiteShell.run(database, "UPDATE users SET first_required = 1 WHERE name = 'gus'")
        #expect(try daemon.login("gus", answer: "000000").verdict == .denied)

        try stall.stall()
        let open = try PAMConfig(socket: daemon.socketPath, options: "failmode=open timeout=2", thenPermit: true)
        let started = Date()
        let gus = try open.authenticate("gus", answers: [])
        print("stalled disk: grace over: \(gus.result) after \(Self.milliseconds(started, Date())) ms")
        #expect(gus.result == "PAM_AUTH_ERR", "\(gus.lines)")
        try stall.release()
        #expect(try daemon.login("gus", answer: "000000").verdict == .denied)
    }
}
