import ArgumentParser
import Foundation
import Logging

/// What `twofoldd move-in` and `twofoldd restore` share: they run without a daemon, print progress
/// and the store's messages to stderr and their report alone on stdout (lines, or JSON with
/// --json), and exit 2 when they fail.
enum OfflineCommand {
    static func run<Report: Encodable>(_ name: String, json: Bool, lines: (Report) -> [String],
                                       _ body: (Logger) async throws -> Report) async throws -> Report {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let report: Report
        do {
            report = try await body(Logger(label: "twofoldd.\(name)"))
        } catch {
            FileHandle.standardError.write(Data("twofoldd \(name): \(error)\n".utf8))
            throw ExitCode(2)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            for line in lines(report) { print(line) }
        }
        return report
    }
}
