#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import TwofoldProtocol

/// The terminal settings to restore if a signal arrives while echo is off.
nonisolated(unsafe) private var savedTerminal = termios()
nonisolated(unsafe) private var echoIsOff = false

/// Reads what the user types: codes (without echo on a terminal) and confirmations. When standard
/// input is not a terminal, every answer is one line of standard input.
enum Terminal {
    static var inputIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// Shows `prompt` (on standard error, only when `showPrompt`) and reads one line; nil at end of input.
    /// With `hidden`, echo is turned off while a terminal reads.
    static func readLine(prompt: String, hidden: Bool, showPrompt: Bool = true) -> String? {
        if showPrompt { Output.prompt(prompt) }
        guard inputIsTerminal else {
            // Nothing is echoed from a pipe or file: end the prompt's line ourselves.
            let line = Swift.readLine(strippingNewline: true)
            if showPrompt { Output.prompt("\n") }
            return line
        }
        guard hidden else { return Swift.readLine(strippingNewline: true) }
        let restore = disableEcho()
        defer {
            if restore { enableEcho() }
            Output.prompt("\n")
        }
        return Swift.readLine(strippingNewline: true)
    }

    /// A code: one line, spaces and dashes removed. Empty or end of input is a cancellation.
    static func readCode(prompt: String, showPrompt: Bool = true) throws(CLIFailure) -> String {
        guard let line = readLine(prompt: prompt, hidden: true, showPrompt: showPrompt) else {
            throw CLIFailure(ExitStatus.cancelled, inputIsTerminal ? "no code given" : "no code given on standard input")
        }
        let code = String(line.filter { !$0.isWhitespace && $0 != "-" })
        guard !code.isEmpty else { throw CLIFailure(ExitStatus.cancelled, "no code given") }
        return code
    }

    /// What `readSecret` got.
    enum Secret { case read, none, tooLong }

    /// Shows `prompt` and reads one line into `buffer`, NUL-terminated (at most `capacity` bytes with
    /// the NUL), echo off on a terminal: a key's PIN, which goes to libfido2 only, so it never
    /// becomes a Swift String (those are copied and never wiped); the caller wipes the buffer.
    /// Read with stdio like `readLine`, so lines piped after a code are not lost to its buffer.
    static func readSecret(prompt: String, into buffer: UnsafeMutablePointer<CChar>, capacity: Int,
                           showPrompt: Bool = true) -> Secret {
        guard capacity > 1 else { return .tooLong }
        if showPrompt { Output.prompt(prompt) }
        let restore = inputIsTerminal && disableEcho()
        defer {
            if restore { enableEcho() }
            // Nothing was echoed (echo off, or a pipe): end the prompt's line ourselves.
            if restore || (showPrompt && !inputIsTerminal) { Output.prompt("\n") }
        }
        var count = 0, tooLong = false, ended = false
        while true {
            let c = getchar()
            if c == EOF { break }
            ended = true
            if c == 0x0A { break }
            if count < capacity - 1 { buffer[count] = CChar(truncatingIfNeeded: c) ; count += 1 } else { tooLong = true }
        }
        buffer[count] = 0
        if tooLong { return .tooLong }
        return ended && count > 0 ? .read : .none
    }

    private static func disableEcho() -> Bool {
        var settings = termios()
        guard tcgetattr(STDIN_FILENO, &settings) == 0 else { return false }
        savedTerminal = settings
        echoIsOff = true
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP] { signal(sig, restoreAndReraise) }
        settings.c_lflag &= ~tcflag_t(ECHO)
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &settings) == 0 else {
            echoIsOff = false
            return false
        }
        return true
    }

    private static func enableEcho() {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &savedTerminal)
        echoIsOff = false
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP] { signal(sig, SIG_DFL) }
    }
}

/// A change a person must confirm by typing yes (a script gives --yes instead).
enum Confirmation {
    /// Goes ahead once a person types yes at `prompt`, after `show` printed what they should read.
    /// Without a terminal, or with --json, nobody can answer: cancelled with "`summary`; `instead`".
    /// The daemon closes a silent connection, so the session is closed while the person reads.
    static func require(_ summary: String, prompt: String, instead: String, cancelled: String, json: Bool,
                        session: DaemonSession, show: () -> Void = {}) throws(CLIFailure) {
        guard Terminal.inputIsTerminal, !json else { throw CLIFailure(ExitStatus.cancelled, "\(summary); \(instead)") }
        show()
        session.disconnect()
        let answer = Terminal.readLine(prompt: prompt, hidden: false)
        guard answer?.trimmingSpaces().lowercased() == "yes" else { throw CLIFailure(ExitStatus.cancelled, cancelled) }
    }
}

/// Restores echo and dies of the same signal (async-signal-safe calls only).
private func restoreAndReraise(_ sig: Int32) {
    if echoIsOff { tcsetattr(STDIN_FILENO, TCSANOW, &savedTerminal) }
    signal(sig, SIG_DFL)
    raise(sig)
}
