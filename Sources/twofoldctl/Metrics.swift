import ArgumentParser
import TwofoldProtocol

extension Twofoldctl {
    struct Metrics: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "metrics",
            abstract: "Print the daemon's metrics in Prometheus's text format (admins).",
            discussion: """
                The text is what the daemon's metrics_listen endpoint serves at /metrics: logins by \
                outcome, service and host, their latency, group-commit batch sizes, store errors, \
                locks, throttle delays and open connections. With --json: {"text": "..."}.
                """
        )

        @OptionGroup var options: GlobalOptions

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let response = try session.send(.metrics)
            guard case .metricsText(let text) = response else { throw unexpected(response) }
            if options.json {
                Output.json(["text": text])
            } else {
                Output.raw(text)
            }
        }
    }
}
