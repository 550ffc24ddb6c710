#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The socket a pam_twofold line talks to, checked as the module checks it (`check_socket_dir`,
/// then connect): the directory and every directory above it out of other users' reach, the
/// socket there.
struct PAMSocketCheck {
    let socket: String
    let daemonUser: String?
    let failOpen: Bool
    /// Where the lines using this socket are.
    let locations: [String]
    /// The socket doctor itself talked to (--socket).
    let doctorSocket: String

    var subject: String { "socket=\(socket) (\(locations.joined(separator: ", ")))" }

    func findings() -> [Finding] {
        if let refusal = directoryProblem() {
            return [.error("pam.socket", subject: subject,
                           "the module refuses this socket: \(refusal); every login through it fails (PAM_AUTH_ERR, whatever failmode)",
                           fix: "let only root (or daemon_user) own and write the socket's directories: `chown root: DIR && chmod go-w DIR`, or use the default socket /run/twofold/twofold.sock")]
        }
        var info = stat()
        guard lstat(socket, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
            let effect = failOpen ? "logins skip the second factor (failmode=open)" : "logins fail (PAM_AUTHINFO_UNAVAIL)"
            return [.error("pam.socket", subject: subject, "there is no socket at \(socket): twofoldd is not listening where the module looks, so \(effect)",
                           fix: "start the daemon (`systemctl enable --now twofoldd.socket`) or set socket= to where twofoldd listens")]
        }
        if socket != doctorSocket {
            return [.warning("pam.socket", subject: subject,
                             "the module talks to twofoldd at \(socket), but doctor checked the daemon at \(doctorSocket)",
                             fix: "run `twofoldctl doctor --socket \(socket)` to check the daemon the module uses")]
        }
        return []
    }

    /// Why the module would refuse the socket's directory chain, or nil.
    func directoryProblem() -> String? {
        var uid: uid_t? = nil
        if let daemonUser, let entry = getpwnam(daemonUser) { uid = entry.pointee.pw_uid }
        var directory = String(socket[..<(socket.lastIndex(of: "/") ?? socket.startIndex)])
        if directory.isEmpty { directory = "/" }
        var isSocketDirectory = true
        while true {
            var info = stat()
            guard lstat(directory, &info) == 0 else {
                // A missing socket directory is "unavailable" to the module, not a refusal.
                return isSocketDirectory ? nil : "cannot check \(directory): \(String(cString: strerror(errno)))"
            }
            let type = info.st_mode & S_IFMT
            if type != S_IFDIR { return "\(directory) is \(type == S_IFLNK ? "a symlink (give the real path)" : "not a directory")" }
            if info.st_uid != 0 && info.st_uid != uid { return "\(directory) is owned by uid \(info.st_uid), not root or daemon_user" }
            let shared = info.st_mode & (S_IWGRP | S_IWOTH) != 0
            if shared && (isSocketDirectory || info.st_mode & S_ISVTX == 0) {
                return "\(directory) is writable by group or others (mode \(String(info.st_mode & 0o7777, radix: 8)))"
            }
            if directory == "/" { return nil }
            let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
            directory = parent.isEmpty ? "/" : parent
            isSocketDirectory = false
        }
    }
}
