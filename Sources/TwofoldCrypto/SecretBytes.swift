import CCrypto

/// Secret bytes (an OTP key, a sealing key, a typed code) in memory that is wiped with
/// `OPENSSL_cleanse` when the value is released. It never prints its contents.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let storage: UnsafeMutableRawBufferPointer

    /// Copies `bytes`; the caller should wipe its own copy if it has one.
    public init<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = storage.initializeMemory(as: UInt8.self, from: bytes)
        count = bytes.count
    }

    /// Takes the bytes of `array` and wipes `array`.
    public convenience init(consuming array: inout [UInt8]) {
        self.init(array)
        Crypto.wipe(&array)
    }

    /// `count` fresh bytes from the CSPRNG.
    public init(randomCount: Int) throws {
        storage = .allocate(byteCount: max(randomCount, 1), alignment: 16)
        count = randomCount
        guard randomCount == 0 || RAND_bytes(storage.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(randomCount)) == 1 else {
            OPENSSL_cleanse(storage.baseAddress, storage.count)
            storage.deallocate()
            throw CryptoError.randomUnavailable
        }
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// Number of secret bytes.
    public let count: Int

    /// Gives temporary access to the bytes; do not let them escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy as a plain array (for encoding to show the user once). Wipe it after use.
    public func copyBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    /// Constant-time equality of contents (length is not secret).
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in Crypto.constantTimeEqual(a, b) } }
    }

    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}
