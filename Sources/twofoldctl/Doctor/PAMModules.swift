import Foundation

/// What `doctor` assumes a module's pam_sm_authenticate returns on an ordinary login, to replay a
/// stack (PAMDispatch). Modules it does not know are asked both ways: succeeding and failing.
enum PAMModuleBehaviour: Equatable {
    /// pam_twofold: the case being examined decides.
    case twofold
    /// Checks the password (or another first factor): succeeds with the right one, fails with a wrong one.
    case firstFactor
    /// Always returns this on an ordinary login (pam_permit, pam_deny, pam_env...).
    case fixed(Int32)
    /// Depends on things doctor cannot see (pam_succeed_if, another OTP module...).
    case unknown

    static let twofoldModule = "pam_twofold.so"

    /// Modules that check the password or another first factor.
    static let firstFactors: Set<String> = [
        "pam_unix.so", "pam_sss.so", "pam_ldap.so", "pam_krb5.so", "pam_winbind.so", "pam_userdb.so", "pam_pwdb.so",
        "pam_radius_auth.so", "pam_tacplus.so", "pam_unix2.so", "pam_tcb.so",
    ]

    static func of(_ item: PAMStackItem) -> PAMModuleBehaviour {
        guard let name = item.line.moduleName else { return .unknown }
        if name == twofoldModule { return .twofold }
        if firstFactors.contains(name) { return .firstFactor }
        switch name {
        case "pam_permit.so", "pam_env.so", "pam_faildelay.so", "pam_securetty.so", "pam_shells.so":
            return .fixed(PAMCode.success)
        case "pam_deny.so":
            return .fixed(PAMCode.authErr)
        case "pam_nologin.so", "pam_group.so", "pam_warn.so":
            return .fixed(PAMCode.ignore)
        case "pam_rootok.so":
            // Succeeds only when the caller is root (su, sudo from root); an ordinary login is not.
            return .fixed(PAMCode.authErr)
        case "pam_faillock.so", "pam_tally2.so":
            // preauth/authsucc pass an unlocked user; authfail is reached only after a failure and fails.
            return item.line.arguments.contains("authfail") ? .fixed(PAMCode.authErr) : .fixed(PAMCode.success)
        default:
            return .unknown
        }
    }
}

/// Where libpam finds a module named without a path.
enum PAMModuleDirectories {
    /// Debian's multiarch triplet for this build (libpam's own directory is /lib/<triplet>/security).
    static var triplet: String {
        #if arch(x86_64)
        return "x86_64-linux-gnu"
        #elseif arch(arm64)
        return "aarch64-linux-gnu"
        #elseif arch(i386)
        return "i386-linux-gnu"
        #elseif arch(arm)
        return "arm-linux-gnueabihf"
        #elseif arch(powerpc64le)
        return "powerpc64le-linux-gnu"
        #elseif arch(s390x)
        return "s390x-linux-gnu"
        #else
        return "unknown-linux-gnu"
        #endif
    }

    /// The directories probed when `--module-dir` is not given.
    static var defaults: [String] {
        ["/lib/\(triplet)/security", "/usr/lib/\(triplet)/security", "/lib/security", "/usr/lib/security"]
    }

    /// The file a module path names, or nil when none of `directories` has it.
    static func resolve(_ module: String, in directories: [String]) -> String? {
        if module.hasPrefix("/") { return FileManager.default.fileExists(atPath: module) ? module : nil }
        for directory in directories {
            let path = directory + "/" + module
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }
}
