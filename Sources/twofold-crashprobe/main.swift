// twofold-crashprobe <db-path> <key-file> <user> <step>
//
// Test helper for crash safety: accepts a TOTP step for <user> through the real store, prints
// "APPLIED" (or "CONFLICT") once commit has returned, i.e. once the store says it is durable, then
// blocks until it is killed. A test SIGKILLs it right after reading the line and checks on reopen
// that the step is still recorded.

import TwofoldCore
import TwofoldSQLite
import TwofoldStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes all of `text` to a file descriptor, unbuffered.
func emit(_ text: String, to fd: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        bytes = bytes.dropFirst(n)
    }
}

func fail(_ message: String) -> Never {
    emit("twofold-crashprobe: \(message)\n", to: 2)
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 5, let step = Int64(arguments[4]) else {
    fail("usage: twofold-crashprobe <db-path> <key-file> <user> <step>")
}

do {
    let keys = try SealingKeys.loadOrCreate(keyFile: arguments[2])
    let store = try SQLiteStore(path: arguments[1], keys: keys)
    let results = try await store.commit([
        // The factor a test's first enrollment gets.
        .accept(user: arguments[3], use: .timeStep(factor: FactorName.first, step: step, offset: 0, verify: VerifyState(lastStep: step)),
                atMillis: SystemClock().nowMillis()),
    ])
    let line = results == [.applied] ? "APPLIED\n" : "CONFLICT\n"
    emit(line, to: 1)  // unbuffered: the line is out before we block
    while true {
        pause()
    }
} catch {
    fail("\(error)")
}
