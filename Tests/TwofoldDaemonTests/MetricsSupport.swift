import Foundation
import TwofoldProtocol
import TwofoldTestSupport

/// The daemon's metrics as Prometheus's own client library reads them: Debian's
/// python3-prometheus-client (`text_string_to_metric_families`), an independent parser of the text
/// format, run by the system Python; over HTTP with Python's urllib.
struct Scrape {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// The HTTP response's Content-Type (nil for text read from twofoldctl).
    var contentType: String?
    /// Each family's type, by the parser's family name (a counter's without `_total`).
    var types: [String: String]
    var samples: [Sample]

    static let script = """
        import json, sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        if sys.argv[1] == '-':
            text, content_type = sys.stdin.read(), None
        else:
            with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
                text, content_type = response.read().decode(), response.headers['Content-Type']
        families = list(text_string_to_metric_families(text))
        print(json.dumps({'contentType': content_type, 'types': {f.name: f.type for f in families},
                          'samples': [[s.name, s.labels, s.value] for f in families for s in f.samples]}))
        """

    /// Parses the exposition `text` (what `twofoldctl metrics` printed).
    static func parse(_ text: String) throws -> Scrape {
        try run(["-"], input: text)
    }

    /// GETs `url` and parses the body.
    static func fetch(_ url: String) throws -> Scrape {
        try run([url], input: nil)
    }

    private static func run(_ arguments: [String], input: String?) throws -> Scrape {
        let (status, output) = try ChildProcess.run(["/usr/bin/python3", "-c", script] + arguments, input: input)
        guard status == 0, let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
              let types = object["types"] as? [String: String], let rows = object["samples"] as? [[Any]] else {
            throw HarnessError("the Prometheus parser failed (exit \(status)):\n\(output)")
        }
        let samples = try rows.map { row -> Sample in
            guard row.count == 3, let name = row[0] as? String, let labels = row[1] as? [String: String], let value = row[2] as? Double else {
                throw HarnessError("unexpected sample \(row)")
            }
            return Sample(name: name, labels: labels, value: value)
        }
        return Scrape(contentType: object["contentType"] as? String, types: types, samples: samples)
    }

    /// The value of the sample `name` whose labels include `labels`, summed over the others (0 when none).
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }

    /// The distinct values of label `label` among the samples of `name`.
    func labelValues(_ name: String, _ label: String) -> Set<String> {
        Set(samples.filter { $0.name == name }.compactMap { $0.labels[label] })
    }
}

/// A raw TCP client for what no scraper sends.
enum RawHTTP {
    /// Sends `bytes` to 127.0.0.1:`port` and returns the first line of the answer ("" when the
    /// connection was closed without one).
    static func send(_ bytes: [UInt8], port: Int) throws -> String {
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let (status, output) = try ChildProcess.run(["/usr/bin/python3", "-c", """
            import socket, sys
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
            try:
                s.sendall(bytes.fromhex(sys.stdin.read()))
            except OSError:
                pass
            data = b''
            try:
                while b'\\r\\n' not in data:
                    chunk = s.recv(4096)
                    if not chunk: break
                    data += chunk
            except OSError:
                pass
            print(data.split(b'\\r\\n')[0].decode('latin-1'))
            """, String(port)], input: hex)
        guard status == 0 else { throw HarnessError("raw HTTP client failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension DaemonProcess {
    /// `twofoldctl metrics` run as root (or as `user`): its exit status and everything it printed.
    func ctlMetrics(as user: TestUser? = nil) throws -> (status: Int32, output: String) {
        try ChildProcess.run((user?.setpriv ?? []) + [TestPaths.twofoldctl, "metrics", "--socket", socketPath])
    }

    /// The port of `metrics_listen = ...:0` that the daemon logged at start.
    func metricsPort() throws -> Int {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("metrics endpoint listening") }),
              let address = line.split(separator: " ").first(where: { $0.hasPrefix("address=") }),
              let port = address.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw HarnessError("no 'metrics endpoint listening' in the log:\n\(log)")
        }
        return port
    }
}
