import CCrypto
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 over data that comes in pieces (a backup file read chunk by chunk), so that a large
/// file is never held whole in memory. Not thread-safe: one owner at a time.
public final class SHA256Stream {
    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            preconditionFailure("SHA-256 is unavailable in libcrypto")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, base, bytes.count) == 1, "SHA-256 update failed in libcrypto")
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything given so far, as 64 lowercase hex digits; the stream is done after it.
    public func finishHex() -> String {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        precondition(ok == 1 && length == 32, "SHA-256 final failed in libcrypto")
        return Crypto.hex(out)
    }

    /// A file's length and SHA-256, read from its start with `pread` 1 MiB at a time (the daemon's
    /// copy of a backup, and the CLI's file read back); throws the `errno` of a failed read.
    public static func ofFile(_ fd: Int32) throws(FileReadError) -> (length: Int64, hex: String) {
        let hasher = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FileReadError(errno: errno) }
            if n == 0 { return (offset, hasher.finishHex()) }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += Int64(n)
        }
    }

    public struct FileReadError: Error {
        public let errno: Int32
    }
}
