import ArgumentParser
import Foundation
import TwofoldProtocol

extension Twofoldctl {
    struct Backup: DaemonCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Copy twofoldd's store to a file while logins go on (admins).",
            discussion: """
                twofoldd copies its SQLite store as it is at one moment (SQLite's online backup: \
                logins go on meanwhile), checks the copy (integrity_check), notes in it when it was \
                taken, on which host and by which twofoldd, and sends it over its socket. twofoldctl \
                writes it beside --output with mode 0600, checks its length and SHA-256 against \
                twofoldd's, syncs it to disk and only then gives it its name: a failure (twofoldd \
                down, not an admin, a full disk) leaves no partial file. An existing --output is \
                refused unless --force. Each backup is audited (action backup).

                The backup is one SQLite file that needs nothing beside it. Its secrets stay sealed \
                with twofoldd's key, and the key is not in it: keep a copy of the key file too, but \
                apart from the backups (another medium, another place), never next to them. Either \
                alone is useless; the two together are every user's second factor. twofoldd restore \
                puts a backup back (twofoldd(8)).

                A daemon on PostgreSQL (a fleet) refuses: back up its database with PostgreSQL's own \
                tools (pg_dump, or base backups with a WAL archive; README, "Backup and restore"). \
                With --json: path, size, sha256, users, takenMillis, host and twofoldVersion.
                """
        )

        /// Taking the copy reads and checks the whole store before the first answer.
        static let minimumTimeout: Double = 300

        @Option(name: .long, help: ArgumentHelp("The file to write the backup to.", valueName: "path"), completion: .file())
        var output: String

        @Flag(help: "Replace --output if it exists.")
        var force = false

        @OptionGroup var options: GlobalOptions

        func validate() throws {
            guard !output.isEmpty, !output.hasSuffix("/") else { throw ValidationError("--output must name a file.") }
        }

        /// What --json prints.
        struct Written: Encodable {
            var path: String
            var size: Int64
            var sha256: String
            var users: Int
            var takenMillis: Int64
            var host: String
            var twofoldVersion: String
        }

        func execute(_ session: DaemonSession) throws(CLIFailure) {
            let destination = try BackupDestination(path: output, force: force)
            defer { destination.discard() }
            let response = try session.send(.backupBegin)
            guard case .backup(let info) = response else { throw unexpected(response) }
            try fetch(info, from: session, into: destination)
            try destination.commit(size: info.size, sha256: info.sha256)
            // The file is in place: twofoldd may drop its copy, and audits the backup as complete.
            // Should that fail, the file is still whole and checked; only the audit says less.
            do {
                _ = try session.sendOnOpenConnection(.backupEnd(id: info.id))
            } catch {
                Output.error("twofoldctl: warning: the backup is complete and checked, but twofoldd did not take its end "
                             + "(\(error.message)): its audit records the backup as abandoned")
            }
            report(Written(path: output, size: info.size, sha256: info.sha256, users: info.users, takenMillis: info.takenMillis,
                           host: info.host, twofoldVersion: info.twofoldVersion))
        }

        /// Reads the backup piece by piece, in order, on the connection that took it.
        private func fetch(_ info: BackupInfo, from session: DaemonSession, into destination: BackupDestination) throws(CLIFailure) {
            var offset: Int64 = 0
            while offset < info.size {
                let response = try session.sendOnOpenConnection(.backupRead(id: info.id, offset: offset))
                guard case .backupChunk(let chunk) = response else { throw unexpected(response) }
                guard chunk.offset == offset, !chunk.data.isEmpty, chunk.data.count <= info.chunkBytes,
                      offset + Int64(chunk.data.count) <= info.size else {
                    throw CLIFailure(ExitStatus.failure, "twofoldd sent a piece of the backup that does not fit (at \(offset) of \(info.size) bytes); nothing was written")
                }
                try destination.write(chunk.data)
                offset += Int64(chunk.data.count)
            }
        }

        private func report(_ written: Written) {
            if options.json {
                Output.json(written)
                return
            }
            Output.line("Wrote \(written.path): \(written.size) bytes, \(written.users) user\(written.users == 1 ? "" : "s"), "
                        + "taken at \(Format.time(millis: written.takenMillis)) on \(written.host) (twofoldd \(written.twofoldVersion)).")
            Output.line("SHA-256: \(written.sha256)")
            Output.line("Its secrets are sealed with twofoldd's key, which is not in it: keep a copy of the key file too, "
                        + "apart from the backup (another medium, another place), never next to it.")
        }
    }
}
