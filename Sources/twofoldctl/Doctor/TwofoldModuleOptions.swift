#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// pam_twofold's options, checked as the module checks them (`parse_option` in pam/pam_twofold.c).
/// The module refuses to run with any unknown or malformed option (PAM_SERVICE_ERR).
struct TwofoldModuleOptions {
    struct Problem {
        /// `pam.nullok`, `pam.unknown-option` or `pam.bad-option`.
        var check: String
        var argument: String
        var reason: String
    }

    static let defaultSocket = "/run/twofold/twofold.sock"
    /// sizeof(sockaddr_un.sun_path): the path and its NUL must fit.
    static let socketPathLimit = 108

    var socket = Self.defaultSocket
    var daemonUser: String?
    var failOpen = false
    var problems: [Problem] = []
    /// The arguments the module accepts, in order (for the corrected line of a fix).
    var accepted: [String] = []

    /// Options of other OTP modules (pam_google_authenticator, pam_oath) and of pam_unix that end
    /// up on a pam_twofold line when a line is copied.
    static let foreign: [String: String] = [
        "secret": "pam_google_authenticator", "authtok_prompt": "pam_google_authenticator", "user": "pam_google_authenticator",
        "no_strict_owner": "pam_google_authenticator", "allowed_perm": "pam_google_authenticator",
        "forward_pass": "pam_google_authenticator", "noskewadj": "pam_google_authenticator",
        "no_increment_hotp": "pam_google_authenticator", "echo_verification_code": "pam_google_authenticator",
        "grace_period": "pam_google_authenticator", "allow_readonly": "pam_google_authenticator",
        "usersfile": "pam_oath", "window": "pam_oath", "digits": "pam_oath", "alwaysok": "pam_oath",
        "try_first_pass": "pam_unix and pam_oath", "use_first_pass": "pam_unix and pam_oath", "use_authtok": "pam_unix",
    ]

    init(_ arguments: [String]) {
        for argument in arguments {
            if let reason = check(argument) {
                problems.append(reason)
            } else {
                accepted.append(argument)
            }
        }
        if problems.isEmpty, let daemonUser, getpwnam(daemonUser) == nil {
            problems.append(Problem(check: "pam.bad-option", argument: "daemon_user=\(daemonUser)", reason: "there is no account '\(daemonUser)'"))
        }
    }

    /// nil when the module accepts `argument`; records its effect.
    private mutating func check(_ argument: String) -> Problem? {
        let (name, value) = Self.split(argument)
        switch name {
        case "socket":
            guard let value, value.hasPrefix("/"), value.utf8.count < Self.socketPathLimit else {
                return bad(argument, "the socket must be an absolute path shorter than \(Self.socketPathLimit) bytes")
            }
            socket = value
        case "timeout":
            guard let value, Self.seconds(value, max: 3600) else { return bad(argument, "the timeout must be whole seconds from 1 to 3600") }
        case "dialog_timeout":
            guard let value, Self.seconds(value, max: 86_400) else { return bad(argument, "dialog_timeout must be whole seconds from 1 to 86400") }
        case "daemon_user" where value?.isEmpty == false:
            daemonUser = value
        case "failmode" where value == "open" || value == "closed":
            failOpen = value == "open"
        case "forward_password" where value == nil, "nofido2" where value == nil, "debug" where value == nil:
            break
        case "nullok":
            return Problem(check: "pam.nullok", argument: argument, reason: "`nullok` is an option of pam_unix and pam_google_authenticator, not of pam_twofold")
        default:
            if let owner = Self.foreign[name] {
                return Problem(check: "pam.unknown-option", argument: argument, reason: "`\(name)` is an option of \(owner), not of pam_twofold")
            }
            if ["socket", "timeout", "dialog_timeout", "daemon_user", "failmode", "forward_password", "nofido2", "debug"].contains(name) {
                return bad(argument, "`\(argument)` is not a value pam_twofold accepts")
            }
            return Problem(check: "pam.unknown-option", argument: argument, reason: "pam_twofold has no option `\(name)`")
        }
        return nil
    }

    private func bad(_ argument: String, _ reason: String) -> Problem {
        Problem(check: "pam.bad-option", argument: argument, reason: reason)
    }

    static func split(_ argument: String) -> (String, String?) {
        guard let eq = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<eq]), String(argument[argument.index(after: eq)...]))
    }

    /// `parse_seconds`: digits only (a leading digit, nothing after), 1 to max.
    static func seconds(_ text: String, max: Int) -> Bool {
        guard let first = text.first, first.isASCII, first.isNumber, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(text) else { return false }
        return value >= 1 && value <= max
    }
}
