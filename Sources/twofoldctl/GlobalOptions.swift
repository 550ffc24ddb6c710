import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options every command takes (`@OptionGroup`).
struct GlobalOptions: ParsableArguments {
    static let defaultSocket = "/run/twofold/twofold.sock"

    @Option(name: .long, help: ArgumentHelp(
        "twofoldd's socket (default: $TWOFOLD_SOCKET, else \(GlobalOptions.defaultSocket)).", valueName: "path"), completion: .file())
    var socket: String?

    @Flag(name: .long, help: "Print machine-readable JSON on standard output.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for twofoldd at each step.", valueName: "seconds"))
    var timeout: Double = 10

    func validate() throws {
        guard timeout.isFinite, timeout > 0, timeout <= 3600 else {
            throw ValidationError("--timeout must be a number of seconds from 0 to 3600 (not 0).")
        }
        if let socket, socket.isEmpty { throw ValidationError("--socket must not be empty.") }
    }

    /// --socket, else $TWOFOLD_SOCKET, else the default.
    var socketPath: String {
        if let socket { return socket }
        if let value = getenv("TWOFOLD_SOCKET"), value.pointee != 0 { return String(cString: value) }
        return Self.defaultSocket
    }
}
