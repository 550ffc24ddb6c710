import ArgumentParser
import CTwofoldFido
import TwofoldProtocol

extension Twofoldctl {
    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key",
            abstract: "Add, list or remove security keys (FIDO2) that logins may use in place of a code.",
            discussion: """
                A security key (FIDO2: a YubiKey, a SoloKey, a Nitrokey, ...) is a second factor in \
                place of a code: at a login where the policy allows the kind fido2, the PAM module \
                asks you to touch the key. It is registered once, on any host with the key plugged \
                in ('key add'), for the whole installation: every host of a fleet accepts it. A key \
                never replaces the password.

                Registering or removing a key needs a current code of one of your factors when you \
                have one (root, and an admin acting on another user, are not asked). When the policy \
                requires user verification (policy set --fido2-user-verification on), the key's PIN \
                is asked on the terminal, without echo, and goes to the key only: never to twofoldd, \
                never on the command line. Keys with built-in verification (a fingerprint) ask for \
                none.

                twofoldd must have fido2_rp_id set (twofoldd.conf(5)); 'twofoldctl doctor' checks \
                it, the policy and this host's libfido2.
                """,
            subcommands: [Add.self, List.self, Remove.self]
        )
    }
}

extension Twofoldctl.Key {
    /// Key names follow the factors' rule (twofoldd checks it too).
    static func validateName(_ name: String?) throws {
        guard let name else { return }
        guard FactorNames.isValid(name) else { throw ValidationError("'\(name)' is not a key name: \(FactorNames.rule).") }
    }

    /// The status the C layer returns, as the Int32 its functions give.
    static func code(_ status: tf_fido_status) -> Int32 { Int32(status.rawValue) }

    /// What a failed registration means for the person at the key, and what to do.
    static func failure(_ failure: SecurityKey.Failure, who: String, timeoutMillis: Int) -> CLIFailure {
        let detail = failure.fidoError != 0 ? " (libfido2 error \(failure.fidoError))" : ""
        let message: String
        var exit = ExitStatus.failure
        switch failure.status {
        case code(TF_FIDO_NO_LIBRARY):
            message = "libfido2 could not be loaded (libfido2.so.1): install it (Debian: apt install libfido2-1)"
        case code(TF_FIDO_NOT_BUILT):
            message = "this twofoldctl was built without libfido2's headers (libfido2-dev): it cannot talk to security keys"
        case code(TF_FIDO_NO_DEVICE):
            message = "no security key found: plug one in (on this host, not the one you connect from) and run the command again"
        case code(TF_FIDO_TIMEOUT):
            message = "the security key was not touched within \(timeoutMillis / 1000) s: run the command again and touch it when it blinks"
        case code(TF_FIDO_EXCLUDED):
            message = "this security key is already registered for \(who): use another key, or see 'twofoldctl key list'"
        case code(TF_FIDO_PIN_REQUIRED):
            message = "the policy requires user verification and the key needs its PIN: none was given"
            exit = ExitStatus.cancelled
        case code(TF_FIDO_PIN_INVALID):
            message = "wrong PIN for the security key (after 3 wrong PINs in a row, unplug it and plug it in again; after 8 its PIN is blocked)"
        case code(TF_FIDO_PIN_BLOCKED):
            message = "the security key's PIN is blocked after too many wrong PINs: only a reset of the key (which erases its credentials) unblocks it"
        case code(TF_FIDO_UV_UNSUPPORTED):
            message = "the policy requires user verification but this key has neither a PIN nor built-in verification: set a PIN on it (fido2-token -S DEVICE) or use another key"
        default:
            message = "the security key failed: \(SecurityKey.text(failure.status))"
        }
        return CLIFailure(exit, message + detail)
    }

    /// "ES256, AAGUID …, counter 0": a key's details on one line.
    static func describe(_ key: KeyInfo) -> String {
        "\(key.algorithm), model \(key.aaguid), counter \(key.signCount)"
    }

    /// The user's keys (`keyList`).
    static func keys(of user: String?, session: DaemonSession) throws(CLIFailure) -> [KeyInfo] {
        let response = try session.send(.keyList(user: user, all: false))
        guard case .keys(let keys) = response else { throw unexpected(response) }
        return keys
    }
}
