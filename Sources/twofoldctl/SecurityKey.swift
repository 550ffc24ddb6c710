import CTwofoldFido
import Foundation
import TwofoldProtocol

/// `key add`'s registration through the libfido2 layer the PAM module uses (pam/fido): the
/// daemon's challenge in, what the key made out, unchanged (the daemon checks all of it).
enum SecurityKey {
    /// A `KeyChallenge` with its base64 fields decoded and checked against the C layer's bounds.
    struct Challenge {
        var rpID: String
        var rpName: String
        var userName: String
        var userID: [UInt8]
        var clientDataHash: [UInt8]
        var exclude: [[UInt8]]
        var userVerification: Bool
        var timeoutMillis: Int
    }

    /// Why registration failed: a `tf_fido_status` and libfido2's error.
    struct Failure: Error {
        var status: Int32
        var fidoError: Int32
    }

    /// The challenge's bytes, or why twofoldctl cannot use it (a daemon and a twofoldctl that disagree).
    static func challenge(_ offer: KeyChallenge) throws(CLIFailure) -> Challenge {
        func bytes(_ text: String, _ field: String, _ range: ClosedRange<Int>) throws(CLIFailure) -> [UInt8] {
            guard let data = Data(base64Encoded: text), range.contains(data.count) else {
                throw CLIFailure(ExitStatus.failure, "twofoldd sent a key challenge whose \(field) twofoldctl cannot use (is this twofoldctl as new as twofoldd?)")
            }
            return [UInt8](data)
        }
        guard !offer.rpID.isEmpty, !offer.rpID.contains("\0"), !offer.rpName.contains("\0"), !offer.userName.contains("\0"),
              offer.exclude.count <= Int(TF_FIDO_MAX_CREDS) else {
            throw CLIFailure(ExitStatus.failure, "twofoldd sent a key challenge twofoldctl cannot use (is this twofoldctl as new as twofoldd?)")
        }
        var exclude: [[UInt8]] = []
        for id in offer.exclude { exclude.append(try bytes(id, "exclude list", 1...Int(TF_FIDO_MAX_CRED_ID))) }
        return Challenge(rpID: offer.rpID, rpName: offer.rpName, userName: offer.userName,
                         userID: try bytes(offer.userID, "user id", 1...64),
                         clientDataHash: try bytes(offer.challenge, "challenge", Int(TF_FIDO_HASH_LEN)...Int(TF_FIDO_HASH_LEN)),
                         exclude: exclude, userVerification: offer.userVerification,
                         // The C layer's range; the daemon's value is used as is within it.
                         timeoutMillis: min(max(offer.timeoutMillis, 1_000), 120_000))
    }

    /// What the person is told while the key is used: the touch message and the PIN prompt.
    final class Prompts {
        let showPrompts: Bool
        init(showPrompts: Bool) { self.showPrompts = showPrompts }

        func touch() {
            Output.error("Touch your security key…")
        }

        /// The PIN goes straight into libfido2's buffer (see Terminal.readSecret).
        func pin(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int32 {
            switch Terminal.readSecret(prompt: "PIN of the security key: ", into: buffer, capacity: capacity, showPrompt: showPrompts) {
            case .read: return 0
            case .tooLong:
                Output.error("twofoldctl: that PIN is too long for a security key")
                return -1
            case .none: return -1
            }
        }
    }

    /// Makes a credential on the first key present (blocks until it is touched or times out).
    static func register(_ challenge: Challenge, prompts: Prompts) -> Result<KeyRegistration, Failure> {
        let pinned = Pinned()
        var request = tf_fido_register_request()
        request.rp_id = pinned.string(challenge.rpID)
        request.rp_name = pinned.string(challenge.rpName)
        request.user_name = pinned.string(challenge.userName)
        request.user_id = pinned.bytes(challenge.userID)
        request.user_id_len = challenge.userID.count
        request.client_data_hash = pinned.bytes(challenge.clientDataHash)
        withUnsafeMutableBytes(of: &request.exclude) { raw in
            let refs = raw.bindMemory(to: tf_fido_cred_ref.self)
            for (index, id) in challenge.exclude.enumerated() { refs[index] = tf_fido_cred_ref(id: pinned.bytes(id), len: id.count) }
        }
        request.n_exclude = challenge.exclude.count
        request.require_uv = challenge.userVerification ? 1 : 0
        request.timeout_ms = Int32(challenge.timeoutMillis)
        var result = tf_fido_register_result()
        let context = Unmanaged.passRetained(prompts)
        defer { context.release() }
        let status = tf_fido_register(&request, { context, buffer, length in
            guard let context, let buffer else { return -1 }
            return Unmanaged<Prompts>.fromOpaque(context).takeUnretainedValue().pin(into: buffer, capacity: length)
        }, { context in
            guard let context else { return }
            Unmanaged<Prompts>.fromOpaque(context).takeUnretainedValue().touch()
        }, context.toOpaque(), &result)
        guard status == Int32(TF_FIDO_OK.rawValue) else { return .failure(Failure(status: status, fidoError: result.fido_error)) }
        return .success(registration(result))
    }

    /// The key's answer as `keyFinish` carries it (bytes as base64).
    private static func registration(_ result: tf_fido_register_result) -> KeyRegistration {
        var result = result
        let format = withUnsafeBytes(of: &result.fmt) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let authData = withUnsafeBytes(of: &result.auth_data) { Data($0.prefix(result.auth_data_len)) }
        let signature = withUnsafeBytes(of: &result.sig) { Data($0.prefix(result.sig_len)) }
        let certificate = withUnsafeBytes(of: &result.x5c) { Data($0.prefix(result.x5c_len)) }
        return KeyRegistration(format: format, authData: authData.base64EncodedString(), signature: signature.base64EncodedString(),
                               certificates: certificate.isEmpty ? [] : [certificate.base64EncodedString()])
    }

    /// Whether this twofoldctl was built with libfido2's headers (else every key call fails).
    static var built: Bool { tf_fido_built() != 0 }

    /// The C layer's short text for a status ("no security key found").
    static func text(_ status: Int32) -> String { String(cString: tf_fido_status_text(status)) }
}

/// C copies of Swift strings and arrays for one call (a Swift value may move once the pointer to it
/// is no longer used), freed together.
private final class Pinned {
    private var pointers: [UnsafeMutableRawPointer] = []

    deinit { pointers.forEach { free($0) } }

    func string(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        pointers.append(UnsafeMutableRawPointer(copy))
        return UnsafePointer(copy)
    }

    func bytes(_ bytes: [UInt8]) -> UnsafePointer<UInt8> {
        let copy = malloc(max(bytes.count, 1))!
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { copy.copyMemory(from: base, byteCount: source.count) }
        }
        pointers.append(copy)
        return UnsafePointer(copy.assumingMemoryBound(to: UInt8.self))
    }
}
