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

extension GlobalOptions {
    /// The options of `GlobalOptions` as they may be written before the command
    /// (`twofoldctl --socket PATH users`): each with whether it takes a value.
    static let hoistable: [String: Bool] = ["--socket": true, "--timeout": true, "--json": false]

    /// `arguments` with the global options written before the command moved to just after the
    /// command's path (`--socket P user show alice` → `user show --socket P alice`), where every
    /// command that talks to the daemon declares them. Anything else is left for the parser to
    /// judge (an unknown option before the command is still an error naming it).
    static func hoisted(_ arguments: [String], root: any ParsableCommand.Type) -> [String] {
        var globals: [String] = []
        var rest = arguments[...]
        while let first = rest.first {
            let name = String(first.split(separator: "=", maxSplits: 1).first ?? "")
            guard let takesValue = hoistable[name] else { break }
            globals.append(first)
            rest = rest.dropFirst()
            if takesValue && !first.contains("="), let value = rest.first {
                globals.append(value)
                rest = rest.dropFirst()
            }
        }
        guard !globals.isEmpty else { return arguments }
        // Walk the command path: the leading words that name a subcommand, level by level.
        var path: [String] = []
        var command = root
        while let word = rest.first,
              let sub = command.configuration.subcommands.first(where: { $0._commandName == word }) {
            path.append(word)
            rest = rest.dropFirst()
            command = sub
        }
        return path + globals + Array(rest)
    }
}
