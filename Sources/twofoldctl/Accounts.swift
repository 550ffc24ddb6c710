#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The caller's account, for messages and for deciding whether to ask for a current code.
enum CallerAccount {
    static var isRoot: Bool { getuid() == 0 }

    static var name: String? {
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
    }

    /// Whether `user` (from --user) names someone other than the caller.
    static func isOther(_ user: String?) -> Bool {
        guard let user else { return false }
        return user != name
    }
}
