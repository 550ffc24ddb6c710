import TwofoldCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The keys derived from the 32-byte master key: one seals secrets at rest, one peppers recovery-code
/// hashes (the pepper of installations made before key rotation; see `TwofoldStore.recoveryPepper()`),
/// and its public id. The master key itself is not kept.
public struct SealingKeys: Sendable {
    /// Length of the master key in bytes.
    public static let masterKeyLength = 32

    /// The key's public name (`KeyID`): which key sealed a blob, which keys a database knows.
    public let id: KeyID
    /// AES-256-GCM key for secrets at rest: HMAC-SHA256(master, "twofold v1 seal").
    public let secretKey: SecretBytes
    /// Pepper for recovery-code hashes: HMAC-SHA256(master, "twofold v1 recovery pepper").
    public let recoveryPepper: SecretBytes

    /// Derives the sub-keys from a 32-byte master key. Throws `StoreError.badKeyFile` for another length.
    public init(master: SecretBytes) throws {
        guard master.count == Self.masterKeyLength else {
            throw StoreError.badKeyFile("master key must be \(Self.masterKeyLength) bytes, got \(master.count)")
        }
        var seal = Crypto.hmac(.sha256, key: master, data: Array("twofold v1 seal".utf8))
        var pepper = Crypto.hmac(.sha256, key: master, data: Array("twofold v1 recovery pepper".utf8))
        secretKey = SecretBytes(consuming: &seal)
        recoveryPepper = SecretBytes(consuming: &pepper)
        id = KeyID(master: master)
    }

    /// Reads the key file at `path`, or creates it (mode 0600, 32 bytes from the CSPRNG, file and directory
    /// synced) if it does not exist. An existing file must be a regular file of exactly 32 bytes that
    /// group and others can neither read nor write; else `StoreError.badKeyFile`.
    public static func loadOrCreate(keyFile path: String) throws -> SealingKeys {
        if let created = try create(path) { return created }
        return try readKeyFile(path, checkPermissions: true)
    }

    /// Reads the key file at `path`, which must exist (a previous key of a keyring, or a new key
    /// brought in next to one the database knows: a mistyped path must not become a new key).
    /// The same checks as `loadOrCreate`.
    public static func load(keyFile path: String) throws -> SealingKeys {
        try readKeyFile(path, checkPermissions: true)
    }

    /// Creates a new key file at `path` (mode 0600, 32 bytes from the CSPRNG, synced); an existing
    /// file is never overwritten (`StoreError.badKeyFile`).
    public static func createNew(keyFile path: String) throws -> SealingKeys {
        guard let created = try create(path) else { throw StoreError.badKeyFile("\(path) already exists; it is left as it is") }
        return created
    }

    /// Reads a systemd credential (`$CREDENTIALS_DIRECTORY/<name>`): a regular file of exactly 32 bytes.
    /// The permission check does not apply (systemd makes it private to the service).
    public static func fromCredential(directory: String, name: String) throws -> SealingKeys {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw StoreError.badKeyFile("invalid credential name '\(name)'")
        }
        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        return try readKeyFile(dir + "/" + name, checkPermissions: false)
    }

    /// Creates the key file if absent; nil if it already exists.
    private static func create(_ path: String) throws -> SealingKeys? {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            let err = errno
            if err == EEXIST { return nil }
            throw StoreError.badKeyFile("cannot create \(path): \(errorText(err))")
        }
        var bytes: [UInt8]
        do {
            bytes = try Crypto.randomBytes(masterKeyLength)
        } catch {
            close(fd)
            unlink(path)
            throw StoreError.badKeyFile("cannot create \(path): the random generator failed")
        }
        defer { Crypto.wipe(&bytes) }
        var failure: String?
        let written = bytes.withUnsafeBytes { writeAll(fd, $0) }
        if written != 0 {
            failure = "write failed: \(errorText(written))"
        } else if fsync(fd) != 0 {
            failure = "fsync failed: \(errorText(errno))"
        }
        close(fd)
        if let failure {
            unlink(path)
            throw StoreError.badKeyFile("cannot create \(path): \(failure)")
        }
        try syncDirectory(of: path)
        return try SealingKeys(master: SecretBytes(bytes))
    }

    private static func readKeyFile(_ path: String, checkPermissions: Bool) throws -> SealingKeys {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        if fd < 0 {
            let err = errno
            if err == ELOOP { throw StoreError.badKeyFile("\(path) is a symbolic link") }
            throw StoreError.badKeyFile("cannot open \(path): \(errorText(err))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError.badKeyFile("cannot stat \(path): \(errorText(errno))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw StoreError.badKeyFile("\(path) is not a regular file") }
        if checkPermissions, st.st_mode & 0o066 != 0 {
            throw StoreError.badKeyFile("\(path) is readable or writable by group or others (mode \(String(st.st_mode & 0o777, radix: 8)); use chmod 600)")
        }
        guard st.st_size == masterKeyLength else {
            throw StoreError.badKeyFile("\(path) must hold exactly \(masterKeyLength) bytes, it has \(st.st_size)")
        }
        // One byte more than needed, to notice a file that grew since fstat.
        var buffer = [UInt8](repeating: 0, count: masterKeyLength + 1)
        defer { Crypto.wipe(&buffer) }
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.badKeyFile("cannot read \(path): \(errorText(errno))")
            }
            if n == 0 { break }
            total += n
        }
        guard total == masterKeyLength else {
            throw StoreError.badKeyFile("\(path) must hold exactly \(masterKeyLength) bytes, it has \(total)")
        }
        return try SealingKeys(master: SecretBytes(buffer[0..<masterKeyLength]))
    }

    /// Writes everything; 0 on success, else errno.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }

    private static func syncDirectory(of path: String) throws {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.badKeyFile("cannot open directory \(directory) to sync it: \(errorText(errno))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError.badKeyFile("cannot sync directory \(directory): \(errorText(errno))") }
    }
}

package func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
