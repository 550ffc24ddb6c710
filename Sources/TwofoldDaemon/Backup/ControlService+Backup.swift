import Foundation
import TwofoldCore
import TwofoldProtocol
import TwofoldStore

#if canImport(Glibc)
import Glibc
#endif

/// `twofoldctl backup`: a consistent copy of a single host's SQLite store, taken while logins go
/// on, fetched in pieces on the connection that asked for it (a RESPONSE holds at most 4 MiB; a
/// store is larger). `backupBegin` takes the copy and says its size, SHA-256 and manifest;
/// `backupRead` serves it 2 MiB at a time; `backupEnd` says the client has it. The copy belongs to
/// its connection (`BackupFile`): whatever ends that ends the copy. Each backup is audited once,
/// when it ends: its size, its users, when it was taken, its SHA-256 (never a secret).
extension ControlService {
    func beginBackup(peer: PeerCredentials, session: ControlSession?) async throws -> ControlResponse {
        guard let session else { throw ControlFailure(.invalidRequest, "a backup is taken and read on one connection") }
        guard let source = store as? any OnlineBackup else {
            throw ControlFailure(.invalidRequest, Self.databaseBackups("this twofoldd keeps its state in PostgreSQL (\(StoreFactory.location(live.current)))"))
        }
        guard session.backup.withLock({ $0 == nil }) else {
            throw ControlFailure(.conflict, "a backup is in progress on this connection already: end it (backupEnd) first")
        }
        guard backupSlots.take() else {
            throw ControlFailure(.unavailable, "\(BackupSlots.limit) backups are in progress already; try again once one is done")
        }
        let configuration = live.current
        let (clock, host) = (self.clock, HostName.local)
        let file: BackupFile
        do {
            file = try await BackupFile.take(from: source, directory: configuration.stateDirectory, release: { [backupSlots] in backupSlots.give() }) {
                BackupManifest(takenMillis: clock.nowMillis(), host: host, twofoldVersion: TwofoldVersion.string)
            }
        } catch {
            backupSlots.give()
            let message = Self.failure(error, configuration: configuration)
            logger.error("backup failed", metadata: ["peer_uid": "\(peer.uid)", "error": "\(error)"])
            await audit("backup", user: nil, peer: peer, outcome: "failure", reason: message)
            throw ControlFailure(.unavailable, message)
        }
        session.backup.withLock { $0 = file }
        logger.notice("backup taken", metadata: ["peer_uid": "\(peer.uid)", "bytes": "\(file.size)", "users": "\(file.snapshot.users)"])
        let manifest = file.snapshot.manifest
        return .backup(BackupInfo(id: file.id, size: file.size, sha256: file.sha256, takenMillis: manifest.takenMillis, host: manifest.host,
                                  twofoldVersion: manifest.twofoldVersion, users: file.snapshot.users))
    }

    func readBackup(_ id: String, offset: Int64, session: ControlSession?) async throws -> ControlResponse {
        let file = try backup(id, of: session)
        guard offset >= 0, offset <= file.size else {
            throw ControlFailure(.invalidRequest, "offset \(offset) is outside backup \(id) (\(file.size) bytes)")
        }
        do {
            let bytes = try await file.read(from: offset, count: BackupLimits.chunkBytes)
            return .backupChunk(BackupChunk(offset: offset, data: Data(bytes)))
        } catch {
            throw ControlFailure(.unavailable, "backup \(id) cannot be read: \(error)")
        }
    }

    func endBackup(_ id: String, peer: PeerCredentials, session: ControlSession?) async throws -> ControlResponse {
        let file = try backup(id, of: session)
        session?.backup.withLock { $0 = nil }
        await finish(file, peer: peer, endedByClient: true)
        return .ok
    }

    /// The connection is over: a backup it did not end is dropped, audited as abandoned.
    func dropBackup(of session: ControlSession, peer: PeerCredentials) async {
        guard let file = session.backup.withLock({ held -> BackupFile? in defer { held = nil }; return held }) else { return }
        await finish(file, peer: peer, endedByClient: false)
    }

    private func backup(_ id: String, of session: ControlSession?) throws -> BackupFile {
        guard let file = session?.backup.withLock({ $0 }), file.id == id else {
            throw ControlFailure(.notFound, "no backup \(id) on this connection: a backup is read on the connection that took it, until it ends")
        }
        return file
    }

    private func finish(_ file: BackupFile, peer: PeerCredentials, endedByClient: Bool) async {
        let complete = file.close()
        let manifest = file.snapshot.manifest
        let taken = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(manifest.takenMillis) / 1000))
        var reason = "\(file.size) bytes, \(file.snapshot.users) users, taken at \(taken) on \(manifest.host), sha256 \(file.sha256)"
        if !endedByClient {
            reason += "; the connection closed before the client ended the backup"
        } else if !complete {
            reason += "; ended before every byte was read"
        }
        let outcome = endedByClient && complete ? "success" : "abandoned"
        logger.notice("backup \(outcome)", metadata: ["peer_uid": "\(peer.uid)", "bytes": "\(file.size)"])
        await audit("backup", user: nil, peer: peer, outcome: outcome, reason: reason)
    }

    /// Why a copy could not be made, for the admin: a full disk names the directory and what it needs.
    private static func failure(_ error: BackupError, configuration: DaemonConfiguration) -> String {
        guard case .noSpace = error else { return "the backup failed: \(error); nothing was kept" }
        let database = configuration.resolvedDatabasePath
        let bytes = [database, database + "-wal"].reduce(Int64(0)) { total, path in
            var info = stat()
            return total + (stat(path, &info) == 0 ? Int64(info.st_size) : 0)
        }
        return "no space left in the state directory \(configuration.stateDirectory) for the copy of the store "
            + "(about \(bytes / 1024 + 1) KiB): free space there and try again; nothing was kept"
    }

    /// The refusal of a daemon without a single host's store: which backups to take instead.
    static func databaseBackups(_ why: String) -> String {
        "\(why): twofoldctl backup copies a single host's SQLite store only. Back up the PostgreSQL database with "
            + "PostgreSQL's own tools: pg_dump of the database, or base backups with a WAL archive (README, \"Backup and restore\")"
    }
}
