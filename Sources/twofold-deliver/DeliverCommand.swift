#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Dispatch
import Foundation
import TwofoldDelivery
import TwofoldProtocol

/// `twofold-deliver`: the delivery service. twofoldd hands it each login code to send by email or
/// text message over a Unix socket; it runs the channel's command (docs/delivery.md).
@main
struct DeliverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofold-deliver",
        abstract: "The Twofold delivery service: sends twofoldd's codes by email and text message through the configured commands.",
        discussion: "Configuration is read from --config (default /etc/twofold/deliver.conf; a missing default file means built-in defaults, with no command configured). Every key is in deliver.conf(5). SIGTERM stops accepting and exits once the requests in progress are answered. See twofold-deliver(8).",
        version: "twofold-deliver \(TwofoldVersion.string)")

    @Option(name: .long, help: "Config file.")
    var config: String?

    @Flag(name: .long, help: "Check the configuration, print the effective settings (never a command's arguments), then exit.")
    var checkConfig = false

    mutating func run() throws {
        // SIGTERM and SIGINT are blocked before any thread starts (each inherits the mask) and taken
        // by one thread with sigwait: one sent at any moment after start stays pending until then,
        // never lost or ignored (a dispatch source registers its handler only some time after
        // resume()). Commands get an empty mask and default dispositions back (CommandRunner).
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        let settings: DeliveryConfiguration
        do {
            settings = try DeliveryConfiguration.load(path: config ?? DeliveryConfiguration.defaultFile, required: config != nil)
        } catch {
            FileHandle.standardError.write(Data("twofold-deliver: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            for line in settings.summary { print(line) }
            let problems = settings.problems
            for problem in problems { print("error: \(problem)") }
            guard problems.isEmpty else { throw ExitCode(1) }
            print("configuration OK")
            return
        }
        let log = DeliveryLog()
        // A command that exits without reading its input must not kill the service.
        signal(SIGPIPE, SIG_IGN)
        let server: DeliveryServer
        do {
            server = try DeliveryServer(configuration: settings, environment: ProcessInfo.processInfo.environment, log: log)
        } catch {
            log.log(.error, "twofold-deliver cannot run: \(error)")
            throw ExitCode(1)
        }
        let waiter = Thread { [stopSignals] in
            var signals = stopSignals
            var received: Int32 = 0
            while sigwait(&signals, &received) == 0 { server.stop() }
        }
        waiter.start()
        do {
            try server.run()
        } catch {
            log.log(.error, "twofold-deliver cannot run: \(error)")
            throw ExitCode(1)
        }
    }
}
